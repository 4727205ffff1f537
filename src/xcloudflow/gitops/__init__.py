"""GitOps sync: Git repositories (ConfluxSource) rendered into Conflux configs, published idempotently.

The controller logic (fetch, scan, render, publish, status) depends on no Kubernetes API: sources and
their status live in XCloudFlow's database, and the sync runs in `xcf server`.
"""
