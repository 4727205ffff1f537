"""The `conflux` Terraform provider, written in Python with the `tf` package (plugin protocol v6).

Terraform starts it as a plugin process (see `plugin.py` and `install.py`); it manages Conflux configs,
releases and release policies by calling the XCloudFlow server's HTTP API (`client.py`). It must never
import the database, the services or the server: it is a client like any other, and it runs in a
process that Terraform owns. Importing this package stays cheap (no gRPC, no `tf`), so the CLI can use
the installation constants without paying for the plugin machinery.
"""

from __future__ import annotations

from xcloudflow import __version__

HOSTNAME = "registry.xcloudflow.local"
NAMESPACE = "xcloudflow"
TYPE = "conflux"
SOURCE = f"{HOSTNAME}/{NAMESPACE}/{TYPE}"
VERSION = __version__
