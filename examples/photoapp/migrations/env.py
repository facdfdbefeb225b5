"""Alembic environment: curate's (the database comes from CURATE_DATABASE_URL)."""

from curate.alembic_env import run_migrations

from photoapp.models import Base

run_migrations(Base.metadata)
