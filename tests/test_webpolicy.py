"""
livechat.protocols.webpolicy: the client behind trusted proxies, rate
limits at their edges (task.Clock), and the door (licence, origins, bans)
on a real store.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from livechat.licencesettings import SettingsCache
from livechat.model import Licence
from livechat.protocols.webpolicy import (
    Client,
    Door,
    Limits,
    Proxies,
    RateLimiter,
    WebRefused,
    WebSettings,
    parseLicence,
)
from tests.support.db import DialectMixin


def headers(**values: str) -> Any:
    lowered = {k.replace("_", "-").lower(): v for k, v in values.items()}
    return lambda name: lowered.get(name)


class ProxyTests(unittest.TestCase):
    def test_untrustedPeer(self) -> None:
        """Without trusted proxies the headers are ignored: the peer is the client."""
        client = Proxies([]).client(
            "198.51.100.4",
            False,
            headers(host="chat.example", x_forwarded_for="203.0.113.9", x_forwarded_proto="https"),
        )
        self.assertEqual(client, Client("198.51.100.4", False, "chat.example"))
        self.assertEqual(client.ownOrigin, "http://chat.example")

    def test_trustedChain(self) -> None:
        """
        From a trusted proxy the chain is read from the right past trusted
        hops; the first untrusted address is the client, whatever it claims
        further left.  Proto and host come from the proxy.
        """
        proxies = Proxies(["10.0.0.0/8", "192.0.2.1/32"])
        client = proxies.client(
            "10.0.0.5",
            False,
            headers(
                host="10.0.0.11:13200",
                x_forwarded_for="6.6.6.6, 203.0.113.9, 192.0.2.1",
                x_forwarded_proto="https",
                x_forwarded_host="chat.example.com",
            ),
        )
        self.assertEqual(client, Client("203.0.113.9", True, "chat.example.com"))
        self.assertEqual(client.ownOrigin, "https://chat.example.com")

    def test_garbageForwarded(self) -> None:
        """A forwarded address that is not one falls back to the peer."""
        client = Proxies(["10.0.0.5"]).client("10.0.0.5", True, headers(x_forwarded_for="junk"))
        self.assertEqual(client.address, "10.0.0.5")
        self.assertTrue(client.secure)


class RateTests(unittest.TestCase):
    def test_edge(self) -> None:
        """C{burst} at once, then one per 1/rate seconds, exactly."""
        clock = task.Clock()
        limiter = RateLimiter(clock, rate=2.0, burst=3)
        self.assertEqual([limiter.allow("a") for _ in range(4)], [True, True, True, False])
        self.assertTrue(limiter.allow("b"))
        self.assertAlmostEqual(limiter.retryAfter("a"), 0.5)
        clock.advance(0.49)
        self.assertFalse(limiter.allow("a"))
        clock.advance(0.01)
        self.assertTrue(limiter.allow("a"))
        self.assertFalse(limiter.allow("a"))
        clock.advance(100)
        self.assertEqual([limiter.allow("a") for _ in range(4)], [True, True, True, False])

    def test_boundedMemory(self) -> None:
        """Beyond maxKeys, full buckets are forgotten first."""
        clock = task.Clock()
        limiter = RateLimiter(clock, rate=1.0, burst=1, maxKeys=3)
        for key in "abc":
            limiter.allow(key)
        clock.advance(5)
        limiter.allow("d")
        self.assertEqual(len(limiter), 1)

    def test_limits(self) -> None:
        """The three limits read their rates per minute or hour; refusals are 429."""
        clock = task.Clock()
        limits = Limits(
            clock,
            WebSettings(
                messageRate=60,
                messageBurst=2,
                chatRate=3600,
                chatBurst=1,
                addressRate=60,
                addressBurst=1,
            ),
        )
        limits.message(1, "v")
        limits.message(1, "v")
        e = self.assertRaises(WebRefused, limits.message, 1, "v")
        self.assertEqual((e.code, e.status), ("rate_limited", 429))
        limits.message(2, "v")  # another licence's visitor has their own
        limits.chat(1, "v")
        self.assertRaises(WebRefused, limits.chat, 1, "v")
        limits.address("192.0.2.1")
        self.assertRaises(WebRefused, limits.address, "192.0.2.1")
        clock.advance(1)
        limits.message(1, "v")
        limits.chat(1, "v")
        limits.address("192.0.2.1")

    def test_parseLicence(self) -> None:
        self.assertEqual(parseLicence("123456"), 123456)
        self.assertEqual(parseLicence(b"7"), 7)
        for bad, status in (("x", 400), ("", 400), (True, 400), ("0", 404), (2**31, 404)):
            e = self.assertRaises(WebRefused, parseLicence, bad)
            self.assertEqual(e.status, status, bad)


class DoorTests(DialectMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.store = yield self.openStore()
        yield self.store.createLicence(Licence(number=100))
        yield self.store.createLicence(Licence(number=200, expires_at=1_800_000_500_000))
        self.cache = SettingsCache(self.store, self.clock, ttl=10)
        self.door = Door(self.cache, self.clock)
        self.client = Client("192.0.2.1", True, "chat.example")

    @defer.inlineCallbacks
    def refused(self, licence: int, origin: str | None, client: Client | None = None) -> Any:
        e = yield self.assertFailure(
            self.door.admit(licence, origin, client or self.client), WebRefused
        )
        return e

    @defer.inlineCallbacks
    def test_origins(self) -> Any:
        """Only origins on the licence's list get in; no list, no origin: nobody."""
        e = yield self.refused(100, "https://www.example.com")
        self.assertEqual((e.code, e.status), ("origin_refused", 403))
        yield self.store.forLicence(100).setSetting(
            "web.origins", json.dumps(["https://www.example.com", "self"])
        )
        self.cache.forget(100)
        licence = yield self.door.admit(100, "https://www.example.com", self.client)
        self.assertEqual(licence.number, 100)
        yield self.door.admit(100, "https://chat.example", self.client)
        yield self.refused(100, "https://evil.example")
        yield self.refused(100, None)

    @defer.inlineCallbacks
    def test_licences(self) -> Any:
        """Unknown, expired and disabled licences are 404."""
        self.assertEqual((yield self.refused(999, "https://x.example")).status, 404)
        yield self.store.forLicence(200).setSetting("web.origins", '["https://x.example"]')
        yield self.door.admit(200, "https://x.example", self.client)
        self.clock.advance(500)
        self.cache.forget(200)
        self.assertEqual((yield self.refused(200, "https://x.example")).status, 404)
        yield self.store.updateLicence(100, disabled=True)
        yield self.store.forLicence(100).setSetting("web.origins", '["https://x.example"]')
        self.assertEqual((yield self.refused(100, "https://x.example")).status, 404)

    @defer.inlineCallbacks
    def test_bans(self) -> Any:
        """A banned address is refused (403 banned); others are not."""
        licence = self.store.forLicence(100)
        yield licence.setSetting("web.origins", '["https://x.example"]')
        yield licence.setSetting("web.banned", '["192.0.2.0/28"]')
        e = yield self.refused(100, "https://x.example")
        self.assertEqual((e.code, e.status), ("banned", 403))
        yield self.door.admit(100, "https://x.example", Client("192.0.2.16", True, ""))
