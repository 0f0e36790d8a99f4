"""Errors the stores raise (in their Deferreds)."""


class NotFound(LookupError):
    """The licence, operator or group named does not exist."""


class Conflict(ValueError):
    """A unique name (licence number, nick, e-mail, group name) is taken."""


class SeatsExhausted(ValueError):
    """The licence has no free seat of the operator's account type."""
