"""
Visitor tokens: anonymous access for the widget, with no login.

The server makes a visitor's id (random) and signs it with the licence and
an expiry: C{<licence>.<visitor id>.<expiry>.<signature>}, the signature an
HMAC-SHA256 with a server secret.  The monitoring code keeps the token in a
first-party cookie of the site and sends it with every page view and
connection; a token opens that visitor's own chats in that licence, and
nothing else.  A client cannot pick a visitor id: only ids the server made
carry a valid signature.

The secret is C{SESSION_SECRET} when set; otherwise a random one made once
and kept in the global database (C{server_state}), so every node of a
cluster checks the others' tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import Any

import attr

STATE_NAME = "visitor_token_secret"
_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_SIG_BYTES = 18


def newVisitorId() -> str:
    """A fresh visitor id: 22 URL-safe characters (128 random bits)."""
    return secrets.token_urlsafe(16)


@attr.s(frozen=True, auto_attribs=True)
class TokenInfo:
    licence: int
    visitorId: str
    expires: int
    """Seconds since the epoch."""


class VisitorTokens:
    """Makes and checks tokens with one secret; C{clock} tells the time."""

    def __init__(self, secret: bytes, clock: Any, ttl: float) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret is too short")
        # A key of its own, so SESSION_SECRET signs nothing else the same way.
        self._key = hmac.new(secret, b"livechat visitor tokens v1", hashlib.sha256).digest()
        self._clock = clock
        self.ttl = ttl

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:_SIG_BYTES]).decode("ascii")

    def issue(self, licence: int, visitorId: str) -> str:
        """A token for C{visitorId} of C{licence}, valid for C{ttl} seconds."""
        if not _ID.match(visitorId):
            raise ValueError(f"bad visitor id {visitorId!r}")
        expires = int(self._clock.seconds() + self.ttl)
        body = f"{int(licence)}.{visitorId}.{expires}"
        return f"{body}.{self._sign(body)}"

    def check(self, licence: int, token: Any) -> TokenInfo | None:
        """
        The visitor a token names, if it is genuine, of C{licence}, and not
        expired; else C{None}.
        """
        if not isinstance(token, str) or len(token) > 200:
            return None
        parts = token.split(".")
        if len(parts) != 4:
            return None
        licenceText, visitorId, expiresText, signature = parts
        if not (licenceText.isdigit() and expiresText.isdigit() and _ID.match(visitorId)):
            return None
        body = f"{licenceText}.{visitorId}.{expiresText}"
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        if int(licenceText) != licence or int(expiresText) <= self._clock.seconds():
            return None
        return TokenInfo(licence, visitorId, int(expiresText))

    def needsRenewal(self, info: TokenInfo) -> bool:
        """Whether a token has less than half its life left (give a new one)."""
        return info.expires - self._clock.seconds() < self.ttl / 2


async def loadSecret(store: Any, sessionSecret: str) -> bytes:
    """
    C{SESSION_SECRET} if set, else the cluster's shared random secret (made
    by whichever node asks first).
    """
    if sessionSecret:
        return sessionSecret.encode("utf-8")
    await store.claimState(STATE_NAME, secrets.token_hex(32))
    value = await store.getState(STATE_NAME)
    if not value:
        raise RuntimeError("no visitor token secret in server_state")
    return bytes.fromhex(value)
