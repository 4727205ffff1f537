"""The HTTP server: app factory, auth dependencies, error mapping, middleware."""
