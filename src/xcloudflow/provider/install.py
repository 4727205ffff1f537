"""Installing the provider where Terraform finds it offline: an unpacked filesystem mirror.

Terraform (without network access to a registry) loads `registry.xcloudflow.local/xcloudflow/conflux`
from `<dir>/registry.xcloudflow.local/xcloudflow/conflux/<version>/<os>_<arch>/` when the CLI
configuration names `<dir>` as a `filesystem_mirror`. The executable there is a small shell script
(its name must start with `terraform-provider-conflux`) that execs THIS installation's Python in
isolated mode (-I: no PYTHON* variables, no user site, not Terraform's working directory on sys.path)
on `xcloudflow.provider.plugin`. It prints nothing: Terraform reads the handshake from stdout.

Must stay import-light (no `tf`, no gRPC): `xcf provider install` runs it.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import xcloudflow
from xcloudflow.provider import HOSTNAME, NAMESPACE, SOURCE, TYPE, VERSION

EXECUTABLE_PREFIX = f"terraform-provider-{TYPE}"
_ARCHES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "i386": "386",
    "i686": "386",
    "armv7l": "arm",
    "armv6l": "arm",
}


@dataclass(frozen=True)
class Installation:
    mirror: Path  # the filesystem mirror's root (the `path` of the CLI configuration)
    executable: Path
    version: str
    platform: str
    cli_config: str


def os_arch() -> str:
    """Terraform's name for this platform, e.g. linux_amd64."""
    system = "windows" if sys.platform.startswith("win") else sys.platform.rstrip("0123456789")
    machine = platform.machine().lower()
    return f"{system}_{_ARCHES.get(machine, machine)}"


def default_mirror() -> Path:
    """~/.terraform.d/plugins: also Terraform's implied local mirror when no CLI config names one."""
    return Path.home() / ".terraform.d" / "plugins"


def launcher(python: str) -> str:
    """The executable's text: exec `python` on the plugin, with this package's root as a fallback path."""
    root = str(Path(xcloudflow.__file__).resolve().parent.parent)
    code = f"import sys; sys.path.append({root!r}); from xcloudflow.provider.plugin import main; main()"
    return (
        "#!/bin/sh\n"
        f"# {EXECUTABLE_PREFIX} {VERSION}, written by `xcf provider install`: the XCloudFlow Conflux provider.\n"
        "# Terraform reads the plugin handshake from stdout: nothing may be printed there before it.\n"
        f'exec {shlex.quote(python)} -I -c {shlex.quote(code)} "$@"\n'
    )


def _hcl_string(text: str) -> str:
    return json.dumps(text).replace("${", "$${").replace("%{", "%%{")


def cli_config(mirror: Path) -> str:
    """The `provider_installation` block for the Terraform CLI configuration file."""
    pattern = _hcl_string(f"{HOSTNAME}/*/*")
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {_hcl_string(str(mirror))}\n"
        f"    include = [{pattern}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{pattern}]\n"
        "  }\n"
        "}\n"
    )


def install(mirror: Path, *, python: str | None = None) -> Installation:
    """Write (or rewrite) the provider into the mirror at `mirror`; idempotent."""
    mirror = mirror.expanduser().absolute()
    target = os_arch()
    package_dir = mirror / HOSTNAME / NAMESPACE / TYPE / VERSION / target
    package_dir.mkdir(parents=True, exist_ok=True)
    executable = package_dir / f"{EXECUTABLE_PREFIX}_v{VERSION}"
    scratch = executable.with_name(executable.name + ".tmp")
    scratch.write_text(launcher(python or sys.executable))
    scratch.chmod(0o755)
    os.replace(scratch, executable)
    return Installation(
        mirror=mirror, executable=executable, version=VERSION, platform=target, cli_config=cli_config(mirror)
    )


def required_providers() -> str:
    """The `terraform { required_providers { ... } }` block a configuration uses."""
    return f'terraform {{\n  required_providers {{\n    conflux = {{\n      source = "{SOURCE}"\n    }}\n  }}\n}}\n'
