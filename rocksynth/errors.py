"""Errors a user can act on. The CLI prints their one-line message and exits with `exit_code`."""


class RocksynthError(Exception):
    """A failure with a one-line, user-actionable message (exit code 1)."""

    exit_code = 1


class BadInputError(RocksynthError):
    """The user's input (file, option, value) is unusable (exit code 2)."""

    exit_code = 2
