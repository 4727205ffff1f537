# Databases stay private: a node built from modules/database must not ask for a public endpoint.
package xcf.security.inputs

import rego.v1

database_module if input.node.ref == "modules/database"

database_module if startswith(input.node.ref, "modules/database/")

deny contains msg if {
	database_module
	input.node.inputs.publicly_accessible == true
	msg := sprintf(
		"node %s: input publicly_accessible is true; databases (%s) must not be reachable from the internet",
		[input.node.key, input.node.ref],
	)
}
