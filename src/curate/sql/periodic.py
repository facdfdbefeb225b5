"""The statements of periodic jobs: one row per (job, scheduled time) decides who runs it.

The table lives in the configured schema (first on the search_path) and comes from a
migration (`curate.sql.own_tables`). The primary key is the coordination: the process
whose insert returns a row runs that time. A run holds a lease, renewed while it goes on;
a time whose run never finished and whose lease expired (its process died) can be
claimed again. Every time compared is the database's (``now()``), never a host's:
hosts' clocks disagree, the database is the one clock they share.
"""

from __future__ import annotations

from sqlalchemy import text

TABLE = "curate_periodic_runs"

DUE_STATE = text(
    """
    WITH clock AS (SELECT statement_timestamp() AS now)
    SELECT clock.now,
        (SELECT max(scheduled_at) FROM curate_periodic_runs
         WHERE job_name = :job_name AND scheduled_at <= clock.now) AS last,
        ARRAY(
            SELECT scheduled_at FROM curate_periodic_runs
            WHERE job_name = :job_name AND finished_at IS NULL
              AND lease_until < clock.now AND scheduled_at <= clock.now
            ORDER BY scheduled_at DESC
            LIMIT :limit
        ) AS abandoned
    FROM clock
    """
)
"""What a wake-up decides from, read in one statement: the database's time (``now``, the
one clock every process shares), the latest time of the job any process claimed (NULL for
a job never run) and the latest times whose run stopped without finishing, to run again.
Rows later than ``now`` are left out: an older curate on a host whose clock ran ahead may
have written them, and counting them would leave the times before them never run."""

_LEASE = "now() + make_interval(secs => :lease_seconds)"

CLAIM_RUN = text(
    f"""
    INSERT INTO curate_periodic_runs AS run
        (job_name, scheduled_at, worker_id, started_at, lease_until)
    SELECT :job_name, CAST(:scheduled_at AS timestamptz), :worker_id, now(), {_LEASE}
    WHERE CAST(:scheduled_at AS timestamptz) <= now()
    ON CONFLICT (job_name, scheduled_at) DO UPDATE
    SET worker_id = excluded.worker_id,
        started_at = excluded.started_at,
        lease_until = excluded.lease_until,
        attempts = run.attempts + 1
    WHERE run.finished_at IS NULL AND run.lease_until < now()
    RETURNING attempts
    """
)
"""Returns the attempt only to the one process that gets to run this time: the first to
insert it, or the first to take over a run whose process died (unfinished, lease expired).
A time not yet due by the database's clock is never claimed, whatever the host's clock says."""

_OWN_UNFINISHED_RUN = """
    WHERE job_name = :job_name AND scheduled_at = :scheduled_at
      AND worker_id = :worker_id AND attempts = :attempt AND finished_at IS NULL
    RETURNING attempts
"""
"""Fences every write of a run by its claim (worker and attempt): a process that lost its
lease gets no row back and no longer touches the row."""

EXTEND_LEASE = text(f"UPDATE curate_periodic_runs SET lease_until = {_LEASE} {_OWN_UNFINISHED_RUN}")
"""The heartbeat of a run that goes on; no row back: another process took the time over."""

RELEASE_RUN = text(f"UPDATE curate_periodic_runs SET lease_until = now() {_OWN_UNFINISHED_RUN}")
"""Hands a run cut short by shutdown to the next process that looks."""

FINISH_RUN = text(
    f"UPDATE curate_periodic_runs SET finished_at = now(), error = :error {_OWN_UNFINISHED_RUN}"
)
"""Records the outcome of a claimed run (``error`` NULL when it succeeded); no row back: the
run lost its lease, and the transaction it is in is rolled back."""
