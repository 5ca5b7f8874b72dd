"""Exit statuses of the master and the workers, in one place (systemd units and tests read them)."""

EXIT_OK = 0
EXIT_CONFIG = 1  # bad configuration: sockets, TLS files, settings
EXIT_APP_LOAD = 3  # the application could not be loaded (master with --preload, or no worker ever booted)
EXIT_BOOT_FAILED = 3  # a worker's status when it could not load the application (the master reads it)
