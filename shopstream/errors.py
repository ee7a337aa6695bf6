"""The one exception type the CLI turns into a one-line message and a non-zero exit."""

from __future__ import annotations


class ShopstreamError(Exception):
    """A failure the user can act on. The message says what happened and what to do.

    ``exit_code`` lets commands distinguish kinds of failure for scripts (2 = usage or
    configuration, 1 = everything else).
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
