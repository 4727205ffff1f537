# Budget guard rails from `.xcf.yaml` `budget` (given to every policy as input.budget). The set
# `cost` is advisory: these warnings are shown on the ChangeSet and never block it.
package xcf.cost.budget

import rego.v1

warn contains msg if {
	limit := input.budget.maxResourceChanges
	added := input.changeset.summary.add
	added > limit
	msg := sprintf("changeset %s adds %d resources, more than the budget of %d per change", [input.changeset.id, added, limit])
}

warn contains msg if {
	limit := input.budget.monthlyCost
	cost := input.node.monthly_cost
	cost > limit
	msg := sprintf("node %s: estimated monthly cost %.2f exceeds the budget of %.2f", [input.node.key, cost, limit])
}
