"""curate's logger, and logging set-up for apps and the CLI; importing curate configures
nothing.

curate logs through loguru with ``workflow``, ``item_id``, ``attempt`` and ``worker`` (the
worker id) bound to each record of an item (``workflow`` and ``worker`` to a run's). Its
own lines (`logger`, which every curate module logs with) also carry that context at the
start of the message (``[work 42 attempt 1] failed: ...``), so they say where in any
set-up: loguru's default sink, an app's own sinks, standard logging.
`configure_logging` installs one stderr sink showing them, as text or as one JSON object
per line (``json=True``, for log shippers; the fields are under ``record.extra``), and
routes the standard library's loggers (APScheduler, SQLAlchemy, Alembic) into loguru.
`propagate_to_logging` goes the other way, for apps whose handlers (alerts, files) are the
standard library's: curate's records reach them too.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from loguru import logger as loguru_logger

if TYPE_CHECKING:
    from loguru import Record

FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[context]}</cyan>{message}"
)

CONTEXT_KEYS = ("workflow", "item_id", "attempt", "worker")
"""What curate binds to its records; propagated ones carry them as ``curate_<key>``."""

_handing_over: ContextVar[bool] = ContextVar("curate_logs_handing_over", default=False)
"""Set while standard logging has one of curate's records: a record that comes back from
there into loguru (curate's or the app's intercept handler) is that same record."""

_propagation_sink: int | None = None


class _InterceptHandler(logging.Handler):
    """Hands standard-library log records to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        if _handing_over.get():  # one of curate's: loguru's sinks have had it
            return
        try:
            level: str | int = loguru_logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        loguru_logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def _context(extra: dict[str, Any]) -> str:
    """``[workflow item_id attempt N] ``, from what is bound; empty without any."""
    parts = [str(extra[key]) for key in ("workflow", "item_id") if key in extra]
    if "attempt" in extra:
        parts.append(f"attempt {extra['attempt']}")
    return f"[{' '.join(parts)}] " if parts else ""


def _add_context(record: Record) -> None:
    """`configure_logging`'s patcher: the context its format shows (an app's own lines
    logged within an item's context get it too)."""
    record["extra"]["context"] = _context(record["extra"])


def _context_into_message(record: Record) -> None:
    """Put the context at the start of one of curate's messages, where every sink shows
    it; and none in ``extra["context"]``, which `configure_logging`'s format would add
    again (its patcher runs before this one)."""
    record["message"] = _context(record["extra"]) + record["message"]
    record["extra"]["context"] = ""


logger = loguru_logger.patch(_context_into_message)
"""The logger of curate's own modules: loguru's, each message prefixed with its context.
A patched logger of our own, so loguru's global configuration is left to the app."""


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    """One stderr sink at ``level`` (JSON lines with ``json``); stdlib logging routed
    into loguru. Propagation to standard logging, if on, stays on."""
    global _propagation_sink
    propagating = _propagation_sink is not None
    loguru_logger.remove()
    _propagation_sink = None
    loguru_logger.configure(patcher=_add_context)
    if json:
        loguru_logger.add(sys.stderr, level=level, serialize=True, backtrace=False, diagnose=False)
    else:
        loguru_logger.add(sys.stderr, level=level, format=FORMAT, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.WARNING, force=True)
    # curate's scheduler listeners report job errors, missed and skipped runs in context;
    # APScheduler's own lines about them would say the same twice.
    logging.getLogger("apscheduler").setLevel(logging.CRITICAL)
    if propagating:
        propagate_to_logging()


class _PropagateHandler(logging.Handler):
    """loguru's documented propagation: each record to the standard logger of its name
    (``curate.engine.outcome``, ...), its context also as ``curate_<key>`` attributes."""

    def emit(self, record: logging.LogRecord) -> None:
        extra: dict[str, Any] = getattr(record, "extra", {})
        for key in CONTEXT_KEYS:
            setattr(record, f"curate_{key}", extra.get(key))
        record.exc_text = None  # loguru's "do not format it": the message has no traceback
        handing_over = _handing_over.set(True)
        try:
            logging.getLogger(record.name).handle(record)
        finally:
            _handing_over.reset(handing_over)


def _is_curates(record: Record) -> bool:
    """One of curate's records, at a level its standard logger logs, not on its way back."""
    name = record["name"] or ""
    return (
        (name == "curate" or name.startswith("curate."))
        and not _handing_over.get()
        and logging.getLogger(name).isEnabledFor(record["level"].no)
    )


def _message_only(record: Record) -> str:
    """The message alone: the traceback goes as the LogRecord's ``exc_info``, which the
    standard formatters print (loguru adds it to the text of a format string)."""
    return "{message}"


def propagate_to_logging(enabled: bool = True) -> None:
    """Hand curate's log records to standard logging as well (idempotent); ``False`` stops.

    Each record goes to ``logging.getLogger(<curate module>)`` (``curate.engine.outcome``,
    ...), so to the handlers of ``curate`` and of the root logger, if that logger is enabled
    for its level; with its exception as ``exc_info``, and the context both as the
    message's prefix (``[workflow item_id attempt N] ``) and as the attributes
    ``curate_workflow``, ``curate_item_id``, ``curate_attempt``, ``curate_worker``. Only
    curate's records; loguru's sinks keep theirs. With `configure_logging` too (or an
    intercept handler of the app's own), a record is not handed back to loguru.
    """
    global _propagation_sink
    if enabled and _propagation_sink is None:
        _propagation_sink = loguru_logger.add(
            _PropagateHandler(), level=0, format=_message_only, filter=_is_curates
        )
    elif not enabled and _propagation_sink is not None:
        loguru_logger.remove(_propagation_sink)
        _propagation_sink = None
