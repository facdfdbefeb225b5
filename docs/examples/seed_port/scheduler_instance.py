"""The app's shared scheduler module after the port: curate's instance, the app's own start
and stop functions unchanged."""

import logging

from curate.scheduling import scheduler  # was: scheduler = AsyncIOScheduler(timezone="UTC")

logger = logging.getLogger(__name__)


def start_scheduler() -> None:
    """Starts the shared scheduler if it's not already running."""
    if not scheduler.running:
        scheduler.start()
        logger.info("Shared APScheduler started.")


def shutdown_scheduler() -> None:
    """Shuts down the shared scheduler."""
    if scheduler.running:
        scheduler.shutdown(wait=False)
        logger.info("Shared APScheduler shut down.")
