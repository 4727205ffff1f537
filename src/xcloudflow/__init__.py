"""XCloudFlow: a self-hosted infrastructure control plane."""

__version__ = "0.1.0"
