"""
Several livechat processes for real: two ``twistd -n livechat`` nodes on
one MariaDB database and a private Redis, haproxy in front (from
etc/haproxy.cfg), and clients on real sockets.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.cluster import Cluster
from tests.support.core import isType


def reply(m: dict[str, Any]) -> dict[str, Any]:
    assert m["type"] == "reply", m
    return m["result"]


class ClusterProcessTests(unittest.TestCase):
    timeout = 240

    @defer.inlineCallbacks
    def test_queueAcrossNodes(self) -> Any:
        """
        Visitors on two nodes ask for chats with nobody online: they wait in
        one queue (Redis), and each sees its own place; haproxy serves a
        page view and a WebSocket too.
        """
        cluster = yield Cluster(self).start()
        a, b = cluster.nodes
        v1, _ = yield cluster.visitor(a.url, a.wsURL)
        v2, _ = yield cluster.visitor(b.url, b.wsURL)
        c1 = reply((yield v1.ask("chat.request", name="One", message="first")))["chatId"]
        yield v1.next(isType("chat.queue", chatId=c1, position=1))
        c2 = reply((yield v2.ask("chat.request", name="Two", message="second")))["chatId"]
        yield v2.next(isType("chat.queue", chatId=c2, position=2))
        assert cluster.haproxy is not None
        v3, _ = yield cluster.visitor(cluster.haproxy.url, cluster.haproxy.wsURL)
        c3 = reply((yield v3.ask("chat.request", name="Three", message="third")))["chatId"]
        yield v3.next(isType("chat.queue", chatId=c3, position=3))
