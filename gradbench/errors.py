"""The one exception type that means "the user asked for something we cannot do"."""


class GradbenchError(Exception):
    """A user-facing error. The CLI prints its message as one line on stderr and exits with code 2."""
