"""The demo's three workflows, each a ``<name>_scheduler.py`` plus a ``<name>_service.py``.

``sitemap_discovery`` (domains) → ``sitemap_import`` (sitemap_files) → ``page_curation``
(pages). Each service selects and queues the rows it creates for the next workflow in its
own transaction, so finishing one item and queueing the next stage commit together.

The defaults below make the demo finish in seconds; production intervals and retry delays
are longer, and ``<NAME>_SCHEDULER_*`` variables override any of them.
"""

from curate import RetryPolicy

INTERVAL_SECONDS = 0.5
TIMEOUT_SECONDS = 10.0
RETRY = RetryPolicy(max_attempts=3, base_seconds=0.2, max_seconds=2.0)
