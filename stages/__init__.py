"""One thin CLI per DVC stage: ``python -m stages.<name>``."""
