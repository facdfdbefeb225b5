"""The app's own settings, unchanged by the port (the seed reads them from its .env)."""

from dataclasses import dataclass


@dataclass
class Settings:
    SITEMAP_IMPORT_SCHEDULER_INTERVAL_MINUTES: float = 1
    SITEMAP_IMPORT_SCHEDULER_BATCH_SIZE: int = 10
    SITEMAP_IMPORT_SCHEDULER_MAX_INSTANCES: int = 1
    PAGE_CURATION_SCHEDULER_INTERVAL_MINUTES: float = 1
    PAGE_CURATION_SCHEDULER_BATCH_SIZE: int = 50  # the scraping API's free tier: 50 a run
    PAGE_CURATION_SCHEDULER_MAX_INSTANCES: int = 1


settings = Settings()
