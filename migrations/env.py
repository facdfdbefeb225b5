"""Alembic environment of the demo's tables: curate's shared env (see curate.alembic_env)."""

from curate.alembic_env import run_migrations
from curate.demo.models import Base

run_migrations(Base.metadata)
