"""An admin action of the app's own: stop fetching while the sites are down, then go on."""

from curate import Workflow, get_runtime, operations


async def pause(workflow: Workflow, reason: str) -> bool:
    """Every worker stops claiming at its next claim; False if it was paused already."""
    engine = await get_runtime().database.engine()
    return await operations.pause_workflow(engine, workflow, reason)


async def resume(workflow: Workflow) -> bool:
    """Workers claim again; listening ones at once (NOTIFY). False if it was not paused."""
    engine = await get_runtime().database.engine()
    return await operations.resume_workflow(engine, workflow)
