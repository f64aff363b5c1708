"""Errors that describe a user's mistake, and warnings a user should see, each shown as one line
without a traceback."""


class RiffusionError(ValueError):
    """Bad input from a user: a file that is not audio, a parameter out of range, ...

    The message is complete on its own; the CLI prints it as one line and exits non-zero, the
    server turns it into a 4xx response.
    """


class RiffusionWarning(UserWarning):
    """Something a user should know about their input that does not stop the work (an audio file
    that seems cut short, say). The CLI prints it as one ``Warning:`` line."""
