"""The app's workflows: the app's start-up and the curate CLI read this module.

`curate new-workflow` adds each new workflow here.
"""

from collections.abc import Callable

from curate import Workflow

WORKFLOWS: list[Workflow] = []

SETUP_FUNCTIONS: list[Callable[[], None]] = []


def setup_schedulers() -> None:
    """Add every workflow's job to the shared scheduler (call at start-up)."""
    for setup in SETUP_FUNCTIONS:
        setup()
