"""State service: versioned Terraform and Pulumi state, locks, rollback, outputs."""
