"""Errors that describe a user's mistake, shown as one line without a traceback."""


class RiffusionError(ValueError):
    """Bad input from a user: a file that is not audio, a parameter out of range, ...

    The message is complete on its own; the CLI prints it as one line and exits non-zero, the
    server turns it into a 4xx response.
    """
