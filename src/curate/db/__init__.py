"""Database access: the async engine (per event loop) and the embedded PostgreSQL."""

from curate.db.engine import Database

__all__ = ["Database"]
