"""Logging: the app/CLI set-up shows the item context and routes stdlib loggers."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import logging
from loguru import logger
import curate

curate.configure_logging("INFO")
logging.getLogger("sqlalchemy.pool").warning("from the standard library")
logging.getLogger("apscheduler.scheduler").warning("said again by curate's listener")
with logger.contextualize(workflow="sitemap_import", item_id="42", attempt=2):
    logger.error("service failed")
logger.debug("hidden below INFO")
"""


def test_configure_logging_shows_context_and_stdlib_records() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stderr.splitlines()
    assert any("WARNING" in line and "from the standard library" in line for line in lines)
    assert any("[sitemap_import 42 attempt 2] service failed" in line for line in lines)
    assert not any("hidden below INFO" in line for line in lines)
    assert not any("said again" in line for line in lines)
