"""The XCloudFlow agent: pulls jobs from a server over HTTP and runs them with local handlers.

It never opens the database and imports nothing of the server side (checked by import-linter): all
it knows of the server is the agent API under /api/agent/v1, so it can run on any machine that can
reach the server, and the embedded agent of `xcf server` uses exactly the same path.
"""

from xcloudflow.agent.client import AgentApiError, JobSpec
from xcloudflow.agent.runner import Agent, Handler, JobIO, JobOutcome

__all__ = ["Agent", "AgentApiError", "Handler", "JobIO", "JobOutcome", "JobSpec"]
