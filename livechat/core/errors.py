"""The one error the core raises at its callers (the adapters)."""

from __future__ import annotations


class CoreError(Exception):
    """
    A request the core refuses.  C{code} is stable, for programs and wire
    error codes; C{message} is for people.

    Codes: C{bad_request} (malformed or out of bounds), C{not_found},
    C{forbidden} (not yours), C{wrong_state} (e.g. the chat is closed),
    C{unavailable} (the operator is offline), C{too_large},
    C{rate_limited}.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
