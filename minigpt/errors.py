"""The one error type users see from minigpt."""


class MiniGPTError(ValueError):
    """A user-facing error: its one-line message names the problem and the fix.

    The CLI prints it as a single line on stderr and exits non-zero; library callers can catch
    it like any ValueError.
    """
