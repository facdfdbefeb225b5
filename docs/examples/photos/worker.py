"""A standalone worker: `python -m photos.worker` runs the photos workflows until SIGTERM."""

import asyncio

import curate
from curate.worker import run_worker

from photos.services.thumbnail_scheduler import thumbnail_workflow


def main() -> None:
    settings = curate.CurateSettings()  # CURATE_DATABASE_URL, CURATE_WORKER_ID, ...
    curate.configure_logging(settings.log_level)
    runtime = curate.configure(settings)
    # Schedules each workflow and the rescuer, then waits for SIGTERM or SIGINT: stops
    # claiming, lets running items finish (CURATE_SHUTDOWN_GRACE_SECONDS) and returns.
    asyncio.run(run_worker([thumbnail_workflow], runtime))


if __name__ == "__main__":
    main()
