# A livechat node for bench/web.py: the ordinary service tree
# (livechat.service.makeService) on sqlite in $BENCH_DIR, HTTP on
# $BENCH_PORT, licence 100 with the bench's page origin allowed, and, with
# BENCH_AGENT=1, an operator of licence 100 connected in this process who
# accepts every chat offered and counts the visitors' messages it receives
# (it prints "agent received {...}" after each BENCH_EXPECT of them).
#
#     twistd -n --pidfile= -y bench/web_node.tac

import json
import os
import time

from twisted.application import service
from twisted.internet import defer, reactor
from zope.interface import implementer

from livechat.config import loadConfig
from livechat.interfaces import IChannel
from livechat.model import Licence, Operator
from livechat.service import makeService

directory = os.environ["BENCH_DIR"]
port = os.environ["BENCH_PORT"]
config = loadConfig(
    None,
    {
        "DATA_DIR": directory,
        "DATABASE": os.environ.get("BENCH_DATABASE", ""),
        "HTTP_LISTEN": f"tcp:{port}:interface=127.0.0.1:backlog=4096",
        "IWCS_LISTEN": "none",
        "PANEL_LISTEN": "none",
        "DEMO_LICENCE": "0",
        "SESSION_SECRET": os.environ.get("BENCH_SECRET", "bench secret " * 4),
        "MAX_CHATS_PER_AGENT": "1000",
        "WEB_MESSAGE_RATE": "100000",
        "WEB_MESSAGE_BURST": "100000",
        "WEB_CHAT_RATE": "100000",
        "WEB_CHAT_BURST": "100000",
        "WEB_ADDRESS_RATE": "10000000",
        "WEB_ADDRESS_BURST": "10000000",
        "WEB_MAX_TABS": "1000",
        "MAX_VISITORS_PER_LICENCE": "100000",
        "WEB_SETTINGS_CACHE": "60",
    },
)
node = makeService(config, reactor, ownsProcess=True)  # as twistd livechat runs it
application = service.Application("livechat-bench")
node.setServiceParent(application)


@implementer(IChannel)
class CountingAgent:
    """An agent's channel: accepts every offer, counts the visitors' messages."""

    def __init__(self) -> None:
        self.session = None
        self.received = 0
        self.first = None
        self.expect = int(os.environ.get("BENCH_EXPECT", "0"))

    def deliver(self, message):
        kind = message.get("type")
        if kind == "chat.offered":
            self.session.accept(message["chatId"])
        elif kind == "chat.event" and message["event"]["type"] == "ContentEvent":
            if message["originatorMetadata"]["role"] == "CONSUMER":
                if self.first is None:
                    self.first = time.monotonic()
                self.received += 1
                if self.received == self.expect:  # one round: report, start counting again
                    took = time.monotonic() - self.first
                    print(
                        "agent received " + json.dumps({"count": self.received, "seconds": took}),
                        flush=True,
                    )
                    self.received, self.first = 0, None

    def close(self, reason):
        pass


async def setUp():
    await node.whenStarted()
    store = node.parts.store
    if await store.getLicence(100) is None:
        await store.createLicence(Licence(number=100))
    origins = json.dumps([os.environ.get("BENCH_ORIGIN", "http://bench.example"), "self"])
    await store.forLicence(100).setSetting("web.origins", origins)
    if os.environ.get("BENCH_AGENT") == "1":
        licence = await store.getLicence(100)
        op = await store.getOperator(100, "agent")
        if op is None:
            op = await store.createOperator(
                100, Operator(id=0, licence=0, nick="agent", operator_id="agent@bench.example"), "x"
            )
        agent = CountingAgent()
        agent.session = node.parts.core.connectOperator(licence, op, agent, client="bench")
        await agent.session.start()
    print("bench node ready", flush=True)


reactor.callWhenRunning(lambda: defer.ensureDeferred(setUp()))
