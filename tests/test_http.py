"""The /health resource, with DummyRequest and task.Clock."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from livechat.protocols.http import HealthResource


class HealthTests(unittest.TestCase):
    def render(self, check: Any, clock: Any = None) -> tuple[DummyRequest, Any]:
        clock = clock or task.Clock()
        resource = HealthResource(check, clock, timeout=3)
        request = DummyRequest([b"health"])
        result = resource.render_GET(request)
        self.assertEqual(result, NOT_DONE_YET)
        return request, clock

    def body(self, request: DummyRequest) -> Any:
        return json.loads(b"".join(request.written))

    def test_ok(self) -> None:
        """A storage check that succeeds gives 200 and status ok."""
        request, _ = self.render(lambda: defer.succeed(None))
        self.assertEqual(request.responseCode, 200)
        self.assertEqual(self.body(request)["storage"], "ok")
        self.assertEqual(request.finished, 1)

    def test_failing(self) -> None:
        """A check that fails gives 503 with the reason."""
        request, _ = self.render(lambda: defer.fail(RuntimeError("gone")))
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(self.body(request)["reason"], "gone")

    def test_hanging(self) -> None:
        """A check with no answer gives 503 after the timeout, not before."""
        request, clock = self.render(lambda: defer.Deferred())
        clock.advance(2.9)
        self.assertEqual(request.finished, 0)
        clock.advance(0.1)
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(self.body(request)["reason"], "no answer within 3 s")

    def test_clientGone(self) -> None:
        """When the client disconnects first, the check is cancelled and nothing is written."""
        pending: defer.Deferred[None] = defer.Deferred()
        request, _ = self.render(lambda: pending)
        for d in request._finishedDeferreds:
            d.errback(Exception("connection lost"))
        request._finishedDeferreds = []
        self.assertTrue(pending.called)
        self.assertEqual(request.written, [])
