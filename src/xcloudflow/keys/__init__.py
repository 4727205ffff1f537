"""Envelope encryption: per-organization data keys wrapped by the master key."""
