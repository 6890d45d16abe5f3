"""The one exception type for a user's mistake: the CLI prints its message and exits with 2."""


class ReviewlensError(Exception):
    """A mistake the user can fix: a bad path, value or file.

    The message is one sentence that names the path or value and says what to do.
    Anything else that goes wrong is a bug and is allowed to raise its own traceback.
    """
