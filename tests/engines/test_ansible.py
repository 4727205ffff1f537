"""The ansible engine with the real ansible-playbook (ansible-runner), against localhost, under tmp_path."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from tests.engines.conftest import RecordingIO, write_tree
from xcloudflow.engines import get_engine
from xcloudflow.engines.ansible import AnsibleEngine, ansible_playbook_path
from xcloudflow.engines.base import EngineCanceled, EngineFailed, EngineSpec
from xcloudflow.errors import Invalid

PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: config dir
      ansible.builtin.file:
        path: "{{ configDir }}"
        state: directory
    - name: app config
      ansible.builtin.copy:
        dest: "{{ configDir }}/app.conf"
        content: "greeting={{ greeting }}\\n"
"""

FAILING = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: fine
      ansible.builtin.debug:
        msg: ok
    - name: check the database
      ansible.builtin.fail:
        msg: the database is not ready
"""

SHELL_FAILS = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: migrate
      ansible.builtin.shell: "echo migration broke >&2; exit 3"
"""

LONG = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: long wait
      ansible.builtin.command: sleep 61.7
"""


def spec(ref: str, tmp_path: Path, **inputs: object) -> EngineSpec:
    return EngineSpec(
        ref=ref, inputs=dict(inputs), env={}, timeout_seconds=120, scratch_dir=tmp_path / "scratch"
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return write_tree(
        tmp_path / "repo",
        {
            "playbooks/app.yml": PLAYBOOK,
            "playbooks/failing.yml": FAILING,
            "playbooks/shell.yml": SHELL_FAILS,
            "playbooks/long.yml": LONG,
            "playbooks/broken.yml": "- hosts: localhost\n  tasks: [ {name: x\n",
        },
    )


def test_the_agents_own_ansible_playbook_is_used() -> None:
    path = ansible_playbook_path()
    assert path.is_file()
    assert path.parent == Path(sys.executable).parent
    assert isinstance(get_engine("ansible"), AnsibleEngine)


def test_check_mode_plans_without_writing_and_apply_writes(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ANSIBLE_CONFIG", str(tmp_path / "user-ansible.cfg"))  # must be ignored
    (tmp_path / "user-ansible.cfg").write_text("[defaults]\nstdout_callback = nonexistent_plugin\n")
    # The playbook's localhost is the job's sandbox: only the checkout (and scratch) is writable.
    out = repo / "out"
    engine = AnsibleEngine()
    io = RecordingIO()
    s = spec("playbooks/app.yml", tmp_path, configDir=str(out), greeting="hello")

    plan = engine.plan(repo, s, io.log, io.cancelled)
    assert not out.exists(), "check mode must not write"
    assert plan.engine == "ansible" and plan.has_changes
    assert plan.summary == {"add": 2, "change": 0, "destroy": 0}
    assert [(rc.address, rc.type, rc.actions) for rc in plan.resource_changes] == [
        ("localhost/config dir", "ansible.builtin.file", ["create"]),
        ("localhost/app config", "ansible.builtin.copy", ["create"]),
    ]
    assert plan.resource_changes[1].detail == {
        "host": "localhost",
        "task": "app config",
        "paths": [str(out / "app.conf")],
    }
    assert "TASK [app config]" in io.text

    applied = engine.apply(repo, s, io.log, io.cancelled)
    assert (out / "app.conf").read_text() == "greeting=hello\n"
    assert applied.summary == {"add": 2, "change": 0, "destroy": 0}

    again = engine.plan(repo, s, io.log, io.cancelled)
    assert not again.has_changes and again.resource_changes == []

    changed = engine.plan(
        repo, spec("playbooks/app.yml", tmp_path, configDir=str(out), greeting="bye"), io.log, io.cancelled
    )
    assert [(rc.address, rc.actions) for rc in changed.resource_changes] == [
        ("localhost/app config", ["update"])
    ]
    assert changed.summary == {"add": 0, "change": 1, "destroy": 0}
    assert (out / "app.conf").read_text() == "greeting=hello\n"

    # Nothing under the user's home, nothing left in the scratch dir.
    assert list(home.iterdir()) == []
    assert list((tmp_path / "scratch").iterdir()) == []
    assert plan.to_json()["resource_changes"][0] == {
        "address": "localhost/config dir",
        "type": "ansible.builtin.file",
        "actions": ["create"],
        "detail": {"host": "localhost", "task": "config dir", "paths": [str(out)]},
    }


def test_a_failing_task_is_named_in_the_error(repo: Path, tmp_path: Path) -> None:
    io = RecordingIO()
    with pytest.raises(EngineFailed) as failed:
        AnsibleEngine().plan(repo, spec("playbooks/failing.yml", tmp_path), io.log, io.cancelled)
    message = failed.value.message
    assert "'check the database'" in message and "localhost" in message
    assert "the database is not ready" in message
    assert "playbooks/failing.yml" in message
    assert failed.value.details["failures"][0]["task"] == "check the database"


def test_a_failing_command_reports_its_exit_code_and_stderr(repo: Path, tmp_path: Path) -> None:
    io = RecordingIO()
    with pytest.raises(EngineFailed) as failed:
        AnsibleEngine().apply(repo, spec("playbooks/shell.yml", tmp_path), io.log, io.cancelled)
    assert "'migrate'" in failed.value.message
    assert "rc=3" in failed.value.message and "migration broke" in failed.value.message


def test_a_playbook_that_does_not_parse_is_a_clear_error(repo: Path, tmp_path: Path) -> None:
    io = RecordingIO()
    with pytest.raises(
        EngineFailed, match=r"ansible-playbook playbooks/broken.yml failed \(exit code \d+\): .*ERROR"
    ):
        AnsibleEngine().plan(repo, spec("playbooks/broken.yml", tmp_path), io.log, io.cancelled)


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("playbooks/missing.yml", "does not exist"),
        ("../outside.yml", "relative path inside"),
        ("/etc/passwd", "relative path inside"),
        ("playbooks", "not a file"),
    ],
)
def test_bad_playbook_refs_are_refused(repo: Path, tmp_path: Path, ref: str, why: str) -> None:
    io = RecordingIO()
    with pytest.raises(Invalid, match=why):
        AnsibleEngine().plan(repo, spec(ref, tmp_path), io.log, io.cancelled)


def _sleeping() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline == b"sleep\x0061.7\x00":
                pids.append(int(entry.name))
    return pids


def test_cancel_stops_a_long_playbook(repo: Path, tmp_path: Path) -> None:
    io = RecordingIO()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            AnsibleEngine().apply(repo, spec("playbooks/long.yml", tmp_path), io.log, io.cancelled)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while not _sleeping() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sleeping(), "the long task never started"
    started = time.monotonic()
    io.cancelled.set()
    thread.join(30)
    assert not thread.is_alive()
    assert time.monotonic() - started < 10
    assert len(outcome) == 1 and isinstance(outcome[0], EngineCanceled)
    time.sleep(0.3)
    assert _sleeping() == []


def test_timeout_stops_the_playbook(repo: Path, tmp_path: Path) -> None:
    io = RecordingIO()
    short = EngineSpec(
        ref="playbooks/long.yml", inputs={}, env={}, timeout_seconds=2, scratch_dir=tmp_path / "s"
    )
    started = time.monotonic()
    with pytest.raises(EngineFailed, match="did not finish within 2s"):
        AnsibleEngine().apply(repo, short, io.log, io.cancelled)
    assert time.monotonic() - started < 15
    time.sleep(0.3)
    assert _sleeping() == []


def test_canceled_before_start_runs_nothing(repo: Path, tmp_path: Path) -> None:
    io = RecordingIO()
    io.cancelled.set()
    out = tmp_path / "out"
    with pytest.raises(EngineCanceled):
        AnsibleEngine().apply(
            repo, spec("playbooks/app.yml", tmp_path, configDir=str(out), greeting="x"), io.log, io.cancelled
        )
    assert not out.exists()
