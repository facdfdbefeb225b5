"""Scheduler modules written to the seed convention, ported to curate by changing one import."""
