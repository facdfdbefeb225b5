"""The engine: claim → execute → record, free of APScheduler so tests call it directly."""
