"""The `doow-azure` command line."""
