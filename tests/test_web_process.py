"""
A fresh `twistd livechat` (a real child process) serves the test page with
the demo licence's tag, and its own pages may use that licence: a page
view and a WebSocket from the server's own origin are admitted, another
origin is not.  The start log says whether Autobahn's native acceleration
is in use.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.http import request
from tests.support.process import ServerProcess
from tests.support.web import connectWS, postJSON


class FreshStartTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_testPageWorks(self) -> Any:
        """
        On a fresh start the root shows the demo licence's tag with the
        server's own address; a page view and a WebSocket from that origin
        are admitted (the demo licence's allow-list has "self"), another
        origin is refused; NVX is reported at start.
        """
        data = os.path.abspath(self.mktemp())
        node = ServerProcess.twistd(
            self,
            [
                "-n",
                "--pidfile=",
                "livechat",
                "--data-dir",
                data,
                "--http",
                "tcp:0:interface=127.0.0.1",
                "--iwcs",
                "none",
                "--panel",
                "none",
            ],
        )
        match = yield node.waitFor(
            r"native acceleration \(NVX\) (in use|available but switched off|not built)"
        )
        self.assertTrue(match.group(1))
        url = (yield node.waitFor(r"listening on (http://\S+)")).group(1)
        licence = (yield node.waitFor(r"licence\s+(\d+)")).group(1)
        code, _, page = yield request("GET", url)
        self.assertEqual(code, 200)
        tag = (
            f'<script src="{url.rstrip("/")}/livechat.js" data-licence="{licence}" async></script>'
        )
        self.assertIn(tag, page.decode())
        own = url.rstrip("/")
        code, _, body = yield postJSON(
            url + "livesupport/monitor", {"licence": int(licence)}, {"Origin": own}
        )
        self.assertEqual(code, 200)
        code, _, refused = yield postJSON(
            url + "livesupport/monitor",
            {"licence": int(licence)},
            {"Origin": "http://evil.example"},
        )
        self.assertEqual((code, refused["code"]), (403, "origin_refused"))
        client = yield connectWS(self, url.replace("http", "ws") + f"ws?licence={licence}", own)
        welcome = yield client.ask("hello", token=body["token"])
        self.assertEqual((welcome["type"], welcome["visitorId"]), ("welcome", body["visitorId"]))
        self.assertEqual(welcome["reception"]["online"], False)
        client.transport.loseConnection()
        yield client.closed
        # twistd shuts down cleanly, then re-raises SIGTERM (see test_plugin).
        self.assertEqual((yield node.stop()), -15)
        self.assertIn("Server Shut Down", node.output)
