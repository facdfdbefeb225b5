"""Services and scheduler modules, one pair per workflow."""
