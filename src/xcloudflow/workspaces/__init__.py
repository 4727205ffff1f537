"""Workspaces: a Terraform configuration (uploaded code versions or managed resources), its variables,
its hooks and its state (a stack in the state service: project = workspace project, stack = name)."""
