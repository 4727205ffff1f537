"""`xcf provider install`, the plugin executable it writes, and the real Terraform loading it offline.

None of these needs a server: Terraform reads the schema from the plugin (`terraform providers schema
-json`) and validates configurations with it.
"""

from __future__ import annotations

import json
import os
import re
import select
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import TerraformRunner, output_of
from xcloudflow.provider import SOURCE, VERSION
from xcloudflow.provider.install import Installation, cli_config, install, os_arch
from xcloudflow.provider.plugin import CERT_FILE, cert_cache_dirs, cert_cache_path

HANDSHAKE = re.compile(r"^1\|6\|unix\|[^|]+\|grpc\|[A-Za-z0-9+/]+$")
HANDSHAKE_TIMEOUT = 20.0


def test_install_writes_the_unpacked_mirror_layout(tmp_path: Path) -> None:
    done = install(tmp_path / "mirror")
    expected = (
        tmp_path
        / "mirror/registry.xcloudflow.local/xcloudflow/conflux"
        / VERSION
        / os_arch()
        / f"terraform-provider-conflux_v{VERSION}"
    )
    assert done.executable == expected
    assert done.executable.stat().st_mode & stat.S_IXUSR
    text = done.executable.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert f"exec {sys.executable} -I -c" in text
    assert [p.name for p in done.executable.parent.iterdir()] == [done.executable.name]
    # Installing again rewrites the same file (the lock file's hash stays valid).
    again = install(tmp_path / "mirror")
    assert again.executable.read_text() == text


def test_cli_config_block() -> None:
    text = cli_config(Path("/opt/tf mirror"))
    assert text == (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        '    path    = "/opt/tf mirror"\n'
        '    include = ["registry.xcloudflow.local/*/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.xcloudflow.local/*/*"]\n'
        "  }\n"
        "}\n"
    )


def test_xcf_provider_install_prints_the_cli_config_on_stdout(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xcloudflow", "provider", "install", "--dir", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == cli_config((tmp_path / "m").absolute())
    assert "installed registry.xcloudflow.local/xcloudflow/conflux" in proc.stderr
    assert f'source = "{SOURCE}"' in proc.stderr


def read_handshake(executable: Path, env: dict[str, str]) -> tuple[str, float]:
    """Start the plugin as Terraform does; its first stdout line and how long it took."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(executable)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=env.get("PWD")
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], HANDSHAKE_TIMEOUT)
        if not ready:
            pytest.fail(f"no handshake within {HANDSHAKE_TIMEOUT}s")
        line = proc.stdout.readline().decode()
        return line.rstrip("\n"), time.monotonic() - started
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        assert b"Traceback" not in err, err.decode()


def test_plugin_prints_only_the_handshake_even_without_a_usable_home(
    provider_mirror: Installation, tmp_path: Path
) -> None:
    not_a_dir = tmp_path / "home-is-a-file"
    not_a_dir.write_text("")
    cache = tmp_path / "cache"
    # HOME unusable, and a working directory holding a decoy `xcloudflow` package: -I ignores both.
    decoy = tmp_path / "cwd"
    (decoy / "xcloudflow").mkdir(parents=True)
    (decoy / "xcloudflow" / "__init__.py").write_text("print('decoy imported')\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(not_a_dir),
        "XCF_PROVIDER_CACHE_DIR": str(cache),
        "PYTHONPATH": str(decoy),
        "PWD": str(decoy),
        "TF_PLUGIN_MAGIC_COOKIE": "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
    }
    line, took = read_handshake(provider_mirror.executable, env)
    assert HANDSHAKE.match(line), line
    assert (cache / CERT_FILE).exists()  # the certificate is cached where we said, not under HOME
    assert took < 10.0
    # The second start reuses the cached certificate.
    line2, _ = read_handshake(provider_mirror.executable, env)
    assert line2.split("|")[-1] == line.split("|")[-1]
    # Without XCF_PROVIDER_CACHE_DIR and with HOME unusable it still starts (private temp dir).
    env.pop("XCF_PROVIDER_CACHE_DIR")
    line3, _ = read_handshake(provider_mirror.executable, env)
    assert HANDSHAKE.match(line3), line3


def test_cert_cache_path_prefers_settings_and_skips_unusable_places(tmp_path: Path) -> None:
    chosen = tmp_path / "chosen"
    assert cert_cache_path({"XCF_PROVIDER_CACHE_DIR": str(chosen)}) == chosen / CERT_FILE
    blocked = tmp_path / "file"
    blocked.write_text("")
    xdg = tmp_path / "xdg"
    path = cert_cache_path({"XCF_PROVIDER_CACHE_DIR": str(blocked / "x"), "XDG_CACHE_HOME": str(xdg)})
    assert path == xdg / "tf-python-provider" / CERT_FILE
    # The shared temp-dir fallback must be private to this user.
    dirs = cert_cache_dirs({})
    assert dirs[-1][1] is True and dirs[-1][0].parent == Path(tempfile.gettempdir())


def test_shared_fallback_refuses_a_directory_open_to_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "file-home"))
    (tmp_path / "file-home").write_text("")
    shared = tmp_path / f"xcloudflow-tf-provider-{os.getuid()}"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    path = cert_cache_path({"HOME": str(tmp_path / "file-home")})
    assert path.parent != shared and path.parent.exists()
    shared.chmod(0o700)
    assert cert_cache_path({}) == shared / CERT_FILE


# --------------------------------------------------------------------------- the real Terraform, no server

REQUIRED = f"""
terraform {{
  required_providers {{
    conflux = {{
      source = "{SOURCE}"
    }}
  }}
}}

provider "conflux" {{
  server_endpoint = "http://127.0.0.1:9"
  auth_token      = "unused"
}}
"""


def init(tf: TerraformRunner, workdir: Path) -> None:
    proc = tf(workdir, "init", "-input=false", "-no-color")
    assert proc.returncode == 0, output_of(proc)


def test_terraform_reads_the_schema_through_the_mirror(tf: TerraformRunner, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(REQUIRED)
    init(tf, tmp_path)
    lock = (tmp_path / ".terraform.lock.hcl").read_text()
    assert f'provider "{SOURCE}"' in lock and f'version = "{VERSION}"' in lock
    proc = tf(tmp_path, "providers", "schema", "-json")
    assert proc.returncode == 0, output_of(proc)
    schema = json.loads(proc.stdout)["provider_schemas"][SOURCE]
    assert set(schema["provider"]["block"]["attributes"]) == {"server_endpoint", "auth_token"}
    assert schema["provider"]["block"]["attributes"]["auth_token"]["sensitive"] is True
    resources = schema["resource_schemas"]
    assert set(resources) == {"conflux_config", "conflux_release", "conflux_release_policy"}
    config = resources["conflux_config"]["block"]
    assert set(config["attributes"]) == {
        "id",
        "tenant",
        "application",
        "environment",
        "name",
        "format",
        "schema",
    }
    retention = config["block_types"]["retention_policy"]
    assert retention["nesting_mode"] == "single"
    assert retention["block"]["block_types"]["rules"]["nesting_mode"] == "list"
    assert set(retention["block"]["block_types"]["rules"]["block"]["attributes"]) == {"type", "keep"}
    release = resources["conflux_release"]["block"]["attributes"]
    assert set(release) == {"config_id", "content", "description", "is_stable", "version_id", "version"}
    assert release["is_stable"]["type"] == "bool" and release["version"]["type"] == "number"
    policy = resources["conflux_release_policy"]["block"]
    assert set(policy["attributes"]) == {"config_id"}
    rule = policy["block_types"]["rule"]
    assert rule["nesting_mode"] == "list"
    assert rule["block"]["attributes"]["labels"]["type"] == ["map", "string"]
    assert set(schema["data_source_schemas"]) == {"conflux_config"}


def test_terraform_validate_uses_the_providers_checks(tf: TerraformRunner, tmp_path: Path) -> None:
    (tmp_path / "main.tf").write_text(
        REQUIRED
        + """
resource "conflux_config" "bad" {
  tenant      = "my-tenant"
  application = "app-A"
  environment = "production"
  name        = "database.toml"
  format      = "xml"

  retention_policy {
    strategy = "AND"
    rules {
      type = "count"
      keep = 50
    }
  }
}

resource "conflux_release_policy" "p" {
  config_id = "not-yet-known"
  rule {
    priority   = 10
    version_id = "a"
  }
  rule {
    priority   = 10
    version_id = "b"
    labels     = {}
  }
}
"""
    )
    init(tf, tmp_path)
    proc = tf(tmp_path, "validate", "-no-color")
    assert proc.returncode == 1, output_of(proc)
    assert "Unknown format 'xml'" in proc.stderr
    assert "Two rules have priority 10" in proc.stderr
