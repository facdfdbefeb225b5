"""photoapp: a small app that uses curate (the sample project of curate's scaffold tests)."""
