# Foundation resources (networks, accounts, clusters) are rebuilt rarely and break everything above
# them when they go: a plan that deletes (or replaces) one is denied. The set `security` is
# mandatory, so this blocks the ChangeSet until someone with the override permission overrides it
# with a reason.
package xcf.security.foundation

import rego.v1

deny contains msg if {
	input.node.layer == "Foundation"
	some change in input.plan.resource_changes
	"delete" in change.actions
	msg := sprintf("node %s: deleting %s in the Foundation layer needs an override", [input.node.key, change.address])
}
