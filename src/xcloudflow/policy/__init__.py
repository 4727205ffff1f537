"""Policy as code: Rego policies (OPA's language) checked against every planned ChangeSet node.

Pure evaluation only: no database, no files, no HTTP. The compose domain reads the repository's
`policies/` and `.xcf.yaml` policy sets, builds the input document and stores the outcomes.
"""

from xcloudflow.policy.rego import (
    DEFAULT_SET,
    PolicyBundle,
    PolicyOutcome,
    PolicySetConfig,
    set_for,
)

__all__ = ["DEFAULT_SET", "PolicyBundle", "PolicyOutcome", "PolicySetConfig", "set_for"]
