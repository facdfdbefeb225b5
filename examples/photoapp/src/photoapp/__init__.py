"""photoapp: a small app that uses curate (the README tutorial and the scaffold tests)."""
