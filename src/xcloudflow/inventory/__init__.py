"""Resource inventory: field-level events from state versions, current inventory, dependency graph."""
