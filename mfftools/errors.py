"""The project's user-facing error: bad input, with a message that says what and where."""


class MfftoolsError(Exception):
    """An error the user can fix; the CLI prints its message and exits non-zero."""
