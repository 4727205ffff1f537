"""The `xcf` command line."""
