"""Conflux: the config center (versioned configs, releases, canary rules, idempotent publish)."""
