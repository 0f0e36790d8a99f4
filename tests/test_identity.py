"""
Signed visitor identity (livechat.identity): Ed25519 and RSA keys, the
signed text, and every way a signature is refused.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from twisted.internet import task
from twisted.trial import unittest

from livechat.identity import (
    IdentityKeyError,
    IdentityVerifier,
    canonical,
    sign,
)

NOW = 1_800_000_000


def pem(privateKey: object) -> bytes:
    return privateKey.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fields(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "licence": 123456,
        "visitor": "Zq3xY8bLr1T0kV2mNw4uHe",
        "name": "Vera Kowalska",
        "email": "vera@example.com",
        "customer_id": "C-1001",
        "expires": NOW + 600,
    }
    base.update(changes)
    return base


class IdentityTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(NOW)

    def writeKey(self, data: bytes) -> str:
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(data)
        return path

    def verifier(self, privateKey: object) -> IdentityVerifier:
        return IdentityVerifier.fromFile(self.writeKey(pem(privateKey)), self.clock)

    def test_canonical(self) -> None:
        """The signed text is the documented one: fixed order, percent-encoded values."""
        self.assertEqual(
            canonical(fields(name="Vera K/ż", customer_id=None)),
            b"livechat-identity-v1&licence=123456&visitor=Zq3xY8bLr1T0kV2mNw4uHe"
            b"&name=Vera%20K%2F%C5%BC&email=vera%40example.com&customer_id="
            b"&expires=1800000600",
        )

    def test_ed25519(self) -> None:
        """An Ed25519 signature verifies and gives the identity."""
        key = ed25519.Ed25519PrivateKey.generate()
        verifier = self.verifier(key)
        identity = verifier.verify(fields(), sign(key, fields()))
        assert identity is not None
        self.assertEqual(
            (identity.name, identity.email, identity.customer_id, identity.expires),
            ("Vera Kowalska", "vera@example.com", "C-1001", NOW + 600),
        )
        self.assertEqual(identity.toCore()["verified"], True)
        self.assertEqual(verifier.algorithm, "Ed25519")

    def test_rsa(self) -> None:
        """An RSA (PKCS#1 v1.5, SHA-256) signature verifies; padding may be present."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        verifier = self.verifier(key)
        signature = sign(key, fields())
        padded = signature + "=" * (-len(signature) % 4)
        self.assertIsNotNone(verifier.verify(fields(), signature))
        self.assertIsNotNone(verifier.verify(fields(), padded))
        standard = padded.replace("-", "+").replace("_", "/")
        self.assertIsNotNone(verifier.verify(fields(), standard))

    def test_refused(self) -> None:
        """Missing, malformed, forged, tampered, replayed and expired signatures give None."""
        key = ed25519.Ed25519PrivateKey.generate()
        other = ed25519.Ed25519PrivateKey.generate()
        verifier = self.verifier(key)
        good = sign(key, fields())
        cases = {
            "no signature": (fields(), None),
            "no expires": (fields(expires=None), sign(key, fields(expires=None))),
            "the signature is not base64": (fields(), "not base64!"),
            "the signature does not verify": (fields(), sign(other, fields())),
        }
        for reason, (signed, signature) in cases.items():
            self.assertEqual(verifier.check(signed, signature), (None, reason))
        for changed in (
            fields(name="Mallory"),
            fields(email="mallory@example.com"),
            fields(customer_id="C-1"),
            fields(visitor="another-visitor-01"),
            fields(licence=654321),
            fields(expires=NOW + 6000),
        ):
            self.assertEqual(verifier.check(changed, good), (None, "the signature does not verify"))
        self.clock.advance(600)
        self.assertEqual(verifier.check(fields(), good), (None, "the signature has expired"))

    def test_badKeyFiles(self) -> None:
        """Missing files, non-keys, weak RSA and other key types are refused, saying why."""
        with self.assertRaises(IdentityKeyError) as caught:
            IdentityVerifier.fromFile("/nonexistent/lc_verify_pub.key", self.clock)
        self.assertIn("cannot read", str(caught.exception))
        with self.assertRaises(IdentityKeyError) as caught:
            IdentityVerifier.fromFile(self.writeKey(b"hello"), self.clock)
        self.assertIn("not a PEM public key", str(caught.exception))
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        with self.assertRaises(IdentityKeyError) as caught:
            self.verifier(weak)
        self.assertIn("2048 bits", str(caught.exception))
        with self.assertRaises(IdentityKeyError) as caught:
            self.verifier(ec.generate_private_key(ec.SECP256R1()))
        self.assertIn("Ed25519 or RSA only", str(caught.exception))
