"""The demo's four workflows, each a ``<name>_scheduler.py`` plus a ``<name>_service.py``.

``sitemap_discovery`` (domains) → ``sitemap_import`` (sitemap_files) → ``page_curation``
(pages) → ``sitemap_finalise`` (sitemap_files again, a fan-in). Each service selects and
queues the rows it creates for the next workflow in its own transaction, so finishing one
item and queueing the next stage commit together; the fan-in queues a sitemap file when
the last of its pages is done, in that page's outcome transaction.

The defaults below make the demo finish in seconds; production intervals and retry delays
are longer, and ``<NAME>_SCHEDULER_*`` variables override any of them.
"""

from curate import RetryPolicy

INTERVAL_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0
RETRY = RetryPolicy(max_attempts=3, base_seconds=0.2, max_seconds=2.0)
