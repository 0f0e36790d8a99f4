"""
API keys of a licence: C{lc_<key id>_<secret>}.  The key id is stored in
the clear (to find the key), the secret only as a SHA-256 digest (it is 256
random bits, so a fast hash is enough) and compared in constant time.
Scopes say what a key may do (C{control} for IWCS controls; the REST API
adds its own).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

import attr
from twisted.internet import defer

PREFIX = "lc_"

SCOPES = frozenset({"control", "api", "connector"})
"""C{control}: an IWCS control; C{api}: the REST API; C{connector}: a messaging channel."""


@attr.s(frozen=True, auto_attribs=True)
class ApiKey:
    licence: int
    key_id: str
    name: str
    scopes: frozenset[str]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def parseKey(key: str) -> tuple[str, str] | None:
    """C{(key id, secret)} of a well-formed key, else C{None}."""
    if not isinstance(key, str) or not key.startswith(PREFIX) or len(key) > 200:
        return None
    keyId, sep, secret = key[len(PREFIX) :].partition("_")
    if not sep or len(keyId) != 12 or not secret:
        return None
    return keyId, secret


@defer.inlineCallbacks
def createKey(store: Any, licence: int, name: str, scopes: set[str]) -> Any:
    """Make a key; fires with C{(full key, ApiKey)}.  The full key is shown once."""
    keyId = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    scopeText = " ".join(sorted(scopes))
    yield store.createApiKey(licence, keyId, _digest(secret), name, scopeText)
    return f"{PREFIX}{keyId}_{secret}", ApiKey(licence, keyId, name, frozenset(scopes))


@defer.inlineCallbacks
def checkKey(store: Any, key: str, licence: int | None = None, scope: str | None = None) -> Any:
    """
    Fires with the L{ApiKey} if C{key} is valid, not revoked, of C{licence}
    (when given) and has C{scope} (when given); else with C{None}.
    """
    parsed = parseKey(key)
    if parsed is None:
        return None
    keyId, secret = parsed
    found = yield store.getApiKey(keyId)
    if found is None:
        return None
    owner, digest, name, scopes, revoked = found
    if not hmac.compare_digest(digest, _digest(secret)) or revoked:
        return None
    if licence is not None and owner != licence:
        return None
    scopeSet = frozenset(scopes.split())
    if scope is not None and scope not in scopeSet:
        return None
    return ApiKey(owner, keyId, name, scopeSet)
