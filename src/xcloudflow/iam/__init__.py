"""Identity: organizations, users, role memberships and API tokens."""
