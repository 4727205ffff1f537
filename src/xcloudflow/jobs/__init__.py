"""The durable job queue and the agent-facing API: every engine's work runs as a job claimed by an agent.

A request never runs infrastructure work itself: it enqueues a job row; an agent (embedded in
`xcf server` or `xcf agent` anywhere) claims it over HTTP, streams logs, uploads artifacts and
reports the result. The database row is the truth; wake-ups (in-process events, PostgreSQL NOTIFY)
are only signals.
"""
