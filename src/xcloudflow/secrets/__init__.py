"""The encrypted secret store: named sets of KEY=VALUE pairs that templates (GitOps) may read.

Values are write-only through the API: they are sealed under the organization's data key and opened
only by other domains' services (`service.read_values`), never returned, logged or audited.
"""
