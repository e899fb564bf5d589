"""The one exception type that means "the user gave us something we cannot work with"."""


class UserError(Exception):
    """Bad input: the CLI prints the message on one line and exits 2, never a traceback."""
