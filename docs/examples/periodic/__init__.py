"""Periodic jobs of the photos app (docs/how-to/periodic-jobs.md)."""
