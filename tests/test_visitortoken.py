"""Visitor tokens: made and checked with a server secret, bound to licence and time."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from livechat.visitortoken import STATE_NAME, VisitorTokens, loadSecret, newVisitorId
from tests.support.db import DialectMixin, bothDialects

SECRET = b"0123456789abcdef0123456789abcdef"


class TokenTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.tokens = VisitorTokens(SECRET, self.clock, 100.0)

    def test_roundTrip(self) -> None:
        """A token names its visitor, in its licence only."""
        visitor = newVisitorId()
        token = self.tokens.issue(123456, visitor)
        info = self.tokens.check(123456, token)
        assert info is not None
        self.assertEqual((info.licence, info.visitorId), (123456, visitor))
        self.assertIsNone(self.tokens.check(654321, token))

    def test_tampered(self) -> None:
        """Changing any part, or another secret, breaks the signature."""
        token = self.tokens.issue(1, "visitor-0001")
        licence, visitor, expires, signature = token.split(".")
        for bad in (
            f"{licence}.visitor-0002.{expires}.{signature}",
            f"{licence}.{visitor}.{int(expires) + 1000}.{signature}",
            f"2.{visitor}.{expires}.{signature}",
            f"{licence}.{visitor}.{expires}.{signature[:-1]}A",
            token + ".x",
            "",
            None,
            12,
            "a" * 201,
        ):
            self.assertIsNone(self.tokens.check(1, bad), bad)
        other = VisitorTokens(b"another secret of enough length!", self.clock, 100.0)
        self.assertIsNone(other.check(1, token))

    def test_expiry(self) -> None:
        """A token is good until its expiry (exclusive), and due for renewal in its second half."""
        token = self.tokens.issue(1, "visitor-0001")
        info = self.tokens.check(1, token)
        assert info is not None
        self.assertFalse(self.tokens.needsRenewal(info))
        self.clock.advance(50.5)
        self.assertTrue(self.tokens.needsRenewal(info))
        self.clock.advance(49.4)
        self.assertIsNotNone(self.tokens.check(1, token))
        self.clock.advance(0.1)
        self.assertIsNone(self.tokens.check(1, token))

    def test_badIds(self) -> None:
        """Only ids the core accepts can be signed."""
        self.assertRaises(ValueError, self.tokens.issue, 1, "short")
        self.assertRaises(ValueError, self.tokens.issue, 1, "has.a.dot.in.it")
        self.assertRaises(ValueError, VisitorTokens, b"short", self.clock, 1)
        self.assertEqual(len(newVisitorId()), 22)


class SecretMixin(DialectMixin):
    @defer.inlineCallbacks
    def test_sharedSecret(self) -> Any:
        """
        Without SESSION_SECRET, two nodes on one database get the same random
        secret (the first one makes it), so each checks the other's tokens.
        """
        url = self.databaseURL()
        one = yield self.openStore(url)
        two = yield self.openStore(url)
        a, b = yield defer.gatherResults(
            [defer.ensureDeferred(loadSecret(one, "")), defer.ensureDeferred(loadSecret(two, ""))]
        )
        self.assertEqual(a, b)
        self.assertEqual(len(a), 32)
        self.assertEqual((yield one.getState(STATE_NAME)), a.hex())
        self.assertEqual((yield defer.ensureDeferred(loadSecret(one, "given"))), b"given")


globals().update(bothDialects(SecretMixin, "SecretTests"))
