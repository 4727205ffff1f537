"""Audit log: who did what, to what, from where, with which result."""
