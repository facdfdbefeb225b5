"""The app's background workflows, one `<name>_scheduler.py` each."""
