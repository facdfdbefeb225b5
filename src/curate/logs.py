"""Logging set-up for apps and the CLI; importing curate configures nothing.

curate logs through loguru with ``workflow``, ``item_id``, ``attempt`` and ``worker`` (the
worker id) bound to each record of an item (``workflow`` and ``worker`` to a run's).
`configure_logging` installs one stderr sink showing them, as text or as one JSON object
per line (``json=True``, for log shippers; the fields are under ``record.extra``), and
routes the standard library's loggers (APScheduler, SQLAlchemy, Alembic) into loguru.
"""

from __future__ import annotations

import logging
import sys

from loguru import logger

FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[context]}</cyan>{message}"
)


class _InterceptHandler(logging.Handler):
    """Hands standard-library log records to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def _add_context(record: dict) -> None:  # type: ignore[type-arg]
    extra = record["extra"]
    parts = [str(extra[key]) for key in ("workflow", "item_id") if key in extra]
    if "attempt" in extra:
        parts.append(f"attempt {extra['attempt']}")
    extra["context"] = f"[{' '.join(parts)}] " if parts else ""


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """One stderr sink at ``level`` (JSON lines with ``json``); stdlib logging routed
    into loguru."""
    logger.remove()
    logger.configure(patcher=_add_context)  # type: ignore[arg-type]
    if json:
        logger.add(sys.stderr, level=level, serialize=True, backtrace=False, diagnose=False)
    else:
        logger.add(sys.stderr, level=level, format=FORMAT, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    # curate's scheduler listeners report job errors, missed and skipped runs in context;
    # APScheduler's own lines about them would say the same twice.
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
