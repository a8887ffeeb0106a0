"""The exception types for mistakes a user can fix.

Every one of them can be rebuilt from its message alone (``cls(message)``): torch's DataLoader re-raises
a worker's exception that way, and an exception that cannot be rebuilt reaches the user as a
RuntimeError with a traceback instead of its one-line message.
"""


class UserError(Exception):
    """A problem caused by the user's input (paths, names, config, files).

    The CLI prints the message alone, without a traceback (unless ``--debug``), and exits with code 2.
    Messages say what is wrong and name the fix.
    """


class Diverged(UserError):
    """A non-finite step stopped the run (or a run that did is asked for again): its record says
    'diverged'. The CLI exits with code 3, so that ``sweep`` tells such runs from failed ones."""

    EXIT_CODE = 3

    def __init__(self, message: str, iteration: int | None = None, what: str = "") -> None:
        super().__init__(message)
        self.iteration, self.what = iteration, what


class DataError(UserError):
    """A problem with one data file; ``kind`` groups such problems in ``splits check`` reports."""

    def __init__(self, message: str, kind: str = "data error", path: object = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.path = str(path)
