"""The example application: a three-stage crawl pipeline over a generated local web.

``domains`` → sitemap discovery → ``sitemap_files`` → sitemap import → ``pages`` → page
curation. Where to look:

- `models`: the tables, each with a curation status and one workflow's columns;
- `services`: one ``<name>_scheduler.py`` and one ``<name>_service.py`` per workflow;
- `curation`: the dual-status write (select a row and queue it, in one transaction);
- `site`: the generated web, served on 127.0.0.1, faults included;
- `pipeline`, `runner`, `app`: running it all (`curate demo`, or inside FastAPI);
- `schema`: the Alembic migrations (top-level ``migrations/``) run from Python.
"""
