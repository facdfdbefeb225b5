"""The app's conftest.py: every test gets a fresh database with the app's tables."""

import pytest
from curate.testing import TemplateSetup
from sqlalchemy.ext.asyncio import create_async_engine

from photos.models import Base


@pytest.fixture(scope="session")
def curate_template_setup() -> TemplateSetup:
    """Build the schema once per session; each test gets a copy of that database."""

    async def create_tables(url: str) -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(Base.metadata.create_all)
        finally:
            await engine.dispose()

    return create_tables
