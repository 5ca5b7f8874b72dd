"""Worker processes: the shared life after fork (base) and the concurrency models (sync, ...)."""
