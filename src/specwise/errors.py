"""User-facing errors.

A :class:`UserError` is a problem with the user's input or environment that they can fix. The CLI
prints its message on one line (no traceback) and exits with code 2.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input or a missing prerequisite; the message says what to do."""

    exit_code = 2


class MissingExtraError(UserError):
    """An optional dependency group is not installed."""

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the optional '{extra}' dependencies: pip install 'specwise[{extra}]'"
        )
