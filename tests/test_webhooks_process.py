"""
Durable delivery across a crash: a real ``twistd livechat`` makes events
while the receiver is down, is killed with SIGKILL, and the next start
delivers every one of them.
"""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from tests.support.http import request
from tests.support.process import ServerProcess
from tests.support.receiver import Receiver

SERVER_KEY = "k" * 40


class CrashTests(unittest.TestCase):
    def startNode(self, config: str) -> ServerProcess:
        return ServerProcess.twistd(self, ["-n", "--pidfile=", "livechat", "--config", config])

    @defer.inlineCallbacks
    def test_outboxSurvivesKill(self) -> Any:
        """
        Three licences are created through the API while the EVENT_NEW_LICENCE
        receiver drops every connection; the node is killed (SIGKILL, nothing
        flushed); after a restart with the receiver up, each NEW_LICENCE
        arrives, once per event id.
        """
        receiver = Receiver().start()
        receiver.down = True
        self.addCleanup(receiver.stop)
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        config = os.path.join(directory, "lc_serv.cfg")
        with open(config, "w") as f:
            f.write(
                "HTTP_LISTEN tcp:0:interface=127.0.0.1\n"
                "IWCS_LISTEN none\nPANEL_LISTEN none\n"
                f"DATA_DIR {directory}/data\nDEMO_LICENCE 0\n"
                f"SERVER_API_KEY {SERVER_KEY}\n"
                f"EVENT_NEW_LICENCE {receiver.url('/new')}\n"
                "WEBHOOK_TIMEOUT 2\nWEBHOOK_SWEEP 1\n"
            )
        node = self.startNode(config)
        url = (yield node.waitFor(r"listening on (http://\S+)")).group(1)
        for number in (700001, 700002, 700003):
            code, _, body = yield request(
                "POST",
                url + "api/v1/licences",
                json.dumps({"number": number}).encode(),
                {"Authorization": f"Bearer {SERVER_KEY}", "Content-Type": "application/json"},
            )
            self.assertEqual(code, 201, body)
        node.transport.signalProcess("KILL")
        yield node.ended()
        self.assertEqual(receiver.requests, [])

        receiver.down = False
        again = self.startNode(config)
        yield again.waitFor(r"listening on (http://\S+)")
        yield receiver.waitFor(3)
        got = sorted(x.form["LICENCE"] for x in receiver.requests)
        self.assertEqual(got, ["700001", "700002", "700003"])
        ids = [x.headers["x-livechat-event-id"] for x in receiver.requests]
        self.assertEqual(len(set(ids)), 3)
        code = yield again.stop()
        self.assertEqual(code, -15, again.output[-3000:])  # a clean stop re-raises SIGTERM
        self.assertIn("Server Shut Down", again.output)
