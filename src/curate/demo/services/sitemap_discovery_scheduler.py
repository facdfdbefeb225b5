"""Sitemap discovery: find the sitemaps of each selected domain."""

from curate import DualStatus, Workflow, scheduling
from curate.demo.models import CurationStatus, Domain
from curate.demo.services import INTERVAL_SECONDS, RETRY, TIMEOUT_SECONDS
from curate.demo.services.sitemap_discovery_service import process_single_sitemap_discovery

sitemap_discovery = Workflow(
    "sitemap_discovery",
    model=Domain,
    service=process_single_sitemap_discovery,
    interval_seconds=INTERVAL_SECONDS,
    batch_size=10,
    concurrency=4,
    timeout_seconds=TIMEOUT_SECONDS,
    retry=RETRY,
)

domain_selection = DualStatus(Domain.curation_status, {CurationStatus.Selected: sitemap_discovery})
"""Selecting domains queues them for sitemap discovery, in the same transaction."""


async def process_pending_sitemap_discoverys() -> None:
    """Job function: process the domains queued for sitemap discovery."""
    await sitemap_discovery.run()


def setup_sitemap_discovery_scheduler() -> None:
    """Adds the sitemap discovery job to the shared scheduler."""
    scheduling.add_workflow_job(sitemap_discovery, process_pending_sitemap_discoverys)
