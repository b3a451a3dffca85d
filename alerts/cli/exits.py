"""Exit statuses of the `alerts` command, shared by every command."""

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 4
