"""The engines an agent runs compose nodes with, behind one protocol (see base.py).

Terraform nodes go through the runs machinery (agent/run_handler.py), not through here. This package
knows nothing of the database, the server, the agent or any domain (an import-linter contract says
so): plain code over a directory.
"""

from __future__ import annotations

from xcloudflow.engines.base import (
    Engine,
    EngineCanceled,
    EngineFailed,
    EngineSpec,
    EngineUnavailable,
    NodePlan,
    ResourceChange,
)
from xcloudflow.errors import Invalid

AGENT_ENGINES = ("ansible", "kubernetes", "pulumi")


def get_engine(name: str) -> Engine:
    """The engine for a compose.plan / compose.apply job; an unknown name is Invalid."""
    if name == "ansible":
        from xcloudflow.engines.ansible import AnsibleEngine

        return AnsibleEngine()
    if name == "kubernetes":
        from xcloudflow.engines.kubernetes import KubernetesEngine

        return KubernetesEngine()
    if name == "pulumi":
        from xcloudflow.engines.pulumi import PulumiEngine

        return PulumiEngine()
    raise Invalid(f"engine {name!r} does not run in compose jobs: one of {', '.join(AGENT_ENGINES)}")


__all__ = [
    "AGENT_ENGINES",
    "Engine",
    "EngineCanceled",
    "EngineFailed",
    "EngineSpec",
    "EngineUnavailable",
    "NodePlan",
    "ResourceChange",
    "get_engine",
]
