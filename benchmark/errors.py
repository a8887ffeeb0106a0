"""The one exception type for mistakes a user can fix."""


class UserError(Exception):
    """A problem caused by the user's input (paths, names, config, files).

    The CLI prints the message alone, without a traceback (unless ``--debug``), and exits with code 2.
    Messages say what is wrong and name the fix.
    """


class DataError(UserError):
    """A problem with one data file; ``kind`` groups such problems in ``splits check`` reports."""

    def __init__(self, kind: str, path: object, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = str(path)
