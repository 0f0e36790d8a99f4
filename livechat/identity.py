"""
Visitor identity vouched for by the website: a name, an e-mail and a
customer id that the website's own server signs with its private key, and
that livechat trusts only when the signature verifies with the public key
file (C{lc_verify_pub.key}, or C{VERIFY_KEY_FILE}).

The signed text (docs/iwcs.md, "Signed identity") is one line::

    livechat-identity-v1&licence=123456&visitor=Zq3xY8bLr1T0kV2mNw4uHe&name=Vera%20K
    &email=vera%40example.com&customer_id=C-1001&expires=1795320000

(without the line break): the fields in this order, each value
percent-encoded (every byte of its UTF-8 but C{A-Z a-z 0-9 - . _ ~} as
C{%XX}, upper-case hex), absent ones empty.  C{expires} is in seconds since
the epoch (UTC).  The signature is Ed25519, or RSA (2048 bits or more)
PKCS#1 v1.5 with SHA-256, sent base64url-encoded (padding optional).

Binding the licence and the visitor id into the text means a signature
cannot be replayed for another visitor or another licence; the expiry
bounds how long a copied one is good.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attr
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from twisted.application import service
from twisted.logger import Logger

PREFIX = "livechat-identity-v1"
FIELDS = ("licence", "visitor", "name", "email", "customer_id", "expires")
"""The signed fields, in the order of the signed text."""
MIN_RSA_BITS = 2048
_SIGNATURE = re.compile(r"[A-Za-z0-9+/_-]+={0,2}\Z")


class IdentityKeyError(Exception):
    """The public key file cannot be used (the message says why)."""


@attr.s(frozen=True, auto_attribs=True)
class Identity:
    """What a verified signature vouches for."""

    name: str
    email: str
    customer_id: str
    expires: int

    def toCore(self) -> dict[str, Any]:
        """The C{identity} the core's C{pageView} stores."""
        return {
            "name": self.name,
            "email": self.email,
            "customer_id": self.customer_id,
            "verified": True,
        }


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The signed text of C{fields} (missing fields are empty)."""
    parts = [PREFIX]
    for name in FIELDS:
        value = fields.get(name)
        text = "" if value is None else str(value)
        parts.append(f"{name}={quote(text, safe='')}")
    return "&".join(parts).encode("ascii")


def decodeSignature(text: str) -> bytes:
    """Base64url (or standard base64), padding optional; ValueError if not."""
    if not isinstance(text, str) or not _SIGNATURE.match(text) or len(text) > 1400:
        raise ValueError("not base64")
    text = text.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def loadPublicKey(data: bytes) -> Any:
    """An Ed25519 or RSA public key from PEM; L{IdentityKeyError} otherwise."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise IdentityKeyError(f"not a PEM public key ({e})") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise IdentityKeyError(f"an RSA key needs {MIN_RSA_BITS} bits, this has {key.key_size}")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise IdentityKeyError(f"a {type(key).__name__} cannot be used: Ed25519 or RSA only")


class IdentityVerifier:
    """
    Checks signed identities with one public key.

    @param clock: an C{IReactorTime}, for the expiry.
    @param path: where the key came from (for logs).
    """

    _log = Logger()

    def __init__(self, key: Any, clock: Any, path: str = "") -> None:
        self.key = key
        self.clock = clock
        self.path = path

    @classmethod
    def fromFile(cls, path: str, clock: Any) -> IdentityVerifier:
        """
        Read the key file (a small file, read at start and on SIGHUP).

        @raise IdentityKeyError: it cannot be read or is not a usable key.
        """
        try:
            with open(path, "rb") as f:
                data = f.read(65536)
        except OSError as e:
            raise IdentityKeyError(f"cannot read {path}: {e.strerror}") from None
        try:
            key = loadPublicKey(data)
        except IdentityKeyError as e:
            raise IdentityKeyError(f"{path}: {e}") from None
        return cls(key, clock, path)

    @property
    def algorithm(self) -> str:
        if isinstance(self.key, rsa.RSAPublicKey):
            return f"RSA-{self.key.key_size} PKCS#1 v1.5 SHA-256"
        return "Ed25519"

    def check(
        self, fields: Mapping[str, Any], signature: str | None
    ) -> tuple[Identity | None, str]:
        """C{(identity, "")} when the signature is good, else C{(None, why not)}."""
        if not signature:
            return None, "no signature"
        expires = fields.get("expires")
        if expires is None:
            return None, "no expires"
        try:
            raw = decodeSignature(signature)
        except ValueError:
            return None, "the signature is not base64"
        try:
            if isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(raw, canonical(fields), padding.PKCS1v15(), hashes.SHA256())
            else:
                self.key.verify(raw, canonical(fields))
        except InvalidSignature:
            return None, "the signature does not verify"
        if int(expires) <= self.clock.seconds():
            return None, "the signature has expired"
        return (
            Identity(
                name=str(fields.get("name") or ""),
                email=str(fields.get("email") or ""),
                customer_id=str(fields.get("customer_id") or ""),
                expires=int(expires),
            ),
            "",
        )

    def verify(self, fields: Mapping[str, Any], signature: str | None) -> Identity | None:
        """
        The identity C{fields} (see L{FIELDS}) vouch for, or C{None} (logged)
        when the signature is missing, bad or expired.
        """
        identity, reason = self.check(fields, signature)
        if identity is None:
            self._log.warn(
                "identity of visitor {visitor} (licence {licence}) dropped: {reason}",
                visitor=fields.get("visitor"),
                licence=fields.get("licence"),
                reason=reason,
            )
        return identity


def sign(privateKey: Any, fields: Mapping[str, Any]) -> str:
    """
    Sign C{fields} as a website does (for tests, the benchmark and the docs'
    example): base64url without padding.
    """
    data = canonical(fields)
    if isinstance(privateKey, rsa.RSAPrivateKey):
        raw = privateKey.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = privateKey.sign(data)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class IdentityKeyFile(service.Service):
    """
    The public key file of a node, shared by IWCS and the web monitoring
    endpoint: read when the service starts and again on SIGHUP
    (C{reconfigure}).  A missing file means no key (signed identities are
    dropped); an unreadable or bad one keeps the key in use, if any, and is
    logged as an error.
    """

    name = "identity"  # type: ignore[assignment]
    _log = Logger()

    def __init__(self, path: str | None, clock: Any) -> None:
        self.path = path
        self.clock = clock
        self.verifier: IdentityVerifier | None = None
        self.loaded = False

    def startService(self) -> None:
        super().startService()
        self.load()

    def reconfigure(self, config: Any) -> None:
        self.path = config.verifyKeyFile
        self.load()

    def load(self) -> None:
        import os

        self.loaded = True
        path = self.path
        if not path or not os.path.exists(path):
            if self.verifier is not None or path:
                self._log.info(
                    "no identity key file{where}; signed identities will be dropped",
                    where=f" at {path}" if path else "",
                )
            self.verifier = None
            return
        try:
            verifier = IdentityVerifier.fromFile(path, self.clock)
        except IdentityKeyError as e:
            self._log.error(
                "identity key not loaded: {error}; {keeping}",
                error=e,
                keeping="keeping the key in use" if self.verifier else "no key in use",
            )
            return
        self.verifier = verifier
        self._log.info(
            "identity key {path} loaded ({algorithm})", path=path, algorithm=verifier.algorithm
        )

    def verify(self, fields: Mapping[str, Any], signature: str | None) -> Identity | None:
        """As L{IdentityVerifier.verify}; C{None} (logged) when there is no key."""
        if self.verifier is None:
            self._log.warn(
                "identity of visitor {visitor} (licence {licence}) dropped: "
                "no identity key is configured",
                visitor=fields.get("visitor"),
                licence=fields.get("licence"),
            )
            return None
        return self.verifier.verify(fields, signature)
