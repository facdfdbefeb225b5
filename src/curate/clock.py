"""The "now" that decides when a queued row is due: the database's, unless a test froze it.

Claims compare ``run_after`` with ``now()`` in PostgreSQL. A test that wants to see a row
scheduled for tomorrow run today freezes the clock and moves it forward
(`curate.testing`); every statement that asks "is it due?" then uses that time instead.
In production the clock is never frozen and the database's ``now()`` is the only time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Frozen time for tests; `now_override` is None when the database's time applies."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None

    def now_override(self) -> datetime | None:
        """The frozen time, or None: use the database's ``now()``."""
        return self._frozen

    def freeze(self, at: datetime | None = None) -> datetime:
        """Stop the clock at ``at`` (default: the current time); returns it."""
        if at is not None and at.tzinfo is None:
            raise ValueError("freeze(at=...) needs a timezone-aware datetime")
        self._frozen = at or datetime.now(UTC)
        return self._frozen

    def advance(self, by: timedelta | float) -> datetime:
        """Move the frozen clock forward by ``by`` (a timedelta or seconds); returns it."""
        if self._frozen is None:
            raise RuntimeError("the clock is not frozen; call freeze() first")
        self._frozen += by if isinstance(by, timedelta) else timedelta(seconds=by)
        return self._frozen

    def unfreeze(self) -> None:
        """Back to the database's time."""
        self._frozen = None


clock = Clock()
"""The process's clock, read by every statement that compares with ``run_after``."""
