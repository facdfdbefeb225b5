"""The app's start-up and shutdown: every registered workflow runs on the shared scheduler."""

from curate import configure, scheduling

from photoapp.services.workflows import setup_schedulers


async def start() -> None:
    """Call from the app's start-up (a FastAPI lifespan, for instance)."""
    configure()
    setup_schedulers()
    scheduling.start_scheduler()


async def stop() -> None:
    """Call from the app's shutdown."""
    await scheduling.shutdown_scheduler()
