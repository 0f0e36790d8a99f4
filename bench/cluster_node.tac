# A livechat node for bench/cluster.py: the ordinary service tree
# (livechat.service.makeService) with DATABASE=$BENCH_DATABASE and
# REDIS=$BENCH_REDIS (empty: one node, in-memory bus), HTTP on $BENCH_PORT,
# and the operators named in $BENCH_AGENTS (comma-separated nicks of
# licence 100) connected in this process as echo agents: each accepts
# every chat offered to it, answers every visitor message "m" with
# "echo:m" and every typing state with the same state.  With BENCH_SETUP=1 it first creates licence 100, the
# operators of $BENCH_ALL_AGENTS (the Nth alone in group N) and the
# bench's page origin (the first node of a run does).
#
#     twistd -n --pidfile= -y bench/cluster_node.tac

import json
import os

from twisted.application import service
from twisted.internet import defer, reactor
from twisted.logger import Logger
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
        "DATABASE": os.environ["BENCH_DATABASE"],
        "REDIS": os.environ.get("BENCH_REDIS", ""),
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
class EchoAgent:
    """An operator's channel: accepts every offer, echoes every visitor message."""

    log = Logger()

    def __init__(self) -> None:
        self.session = None
        self.echoed = 0

    def deliver(self, message):
        kind = message.get("type")
        if kind == "chat.offered":
            self.session.accept(message["chatId"]).addErrback(self.failed)
        elif kind == "chat.event" and message["originatorMetadata"]["role"] == "CONSUMER":
            event = message["event"]
            if event["type"] == "ContentEvent":
                text = "echo:" + event["message"]
                self.session.send(message["chatId"], text).addErrback(self.failed)
                self.echoed += 1
            elif event["type"] == "ChatStateEvent":
                state = event["chatState"]
                self.session.chatState(message["chatId"], state).addErrback(self.failed)

    def failed(self, failure):
        self.log.failure("bench agent", failure)

    def close(self, reason):
        pass


async def setUp():
    await node.whenStarted()
    store = node.parts.store
    nicks = [n for n in os.environ.get("BENCH_AGENTS", "").split(",") if n]
    if os.environ.get("BENCH_SETUP") == "1":
        if await store.getLicence(100) is None:
            await store.createLicence(Licence(number=100))
        origins = json.dumps([os.environ.get("BENCH_ORIGIN", "http://bench.example")])
        await store.forLicence(100).setSetting("web.origins", origins)
        licenceStore = store.forLicence(100)
        for index, nick in enumerate(os.environ.get("BENCH_ALL_AGENTS", "").split(","), 1):
            if nick and await store.getOperator(100, nick) is None:
                op = await store.createOperator(
                    100,
                    Operator(id=0, licence=0, nick=nick, operator_id=f"{nick}@bench.example"),
                    "x",
                )
                # Group N has agent N alone (the load generator's --routing local).
                group = await licenceStore.createGroup(f"group of {nick}")
                assert group.id == index, group
                await licenceStore.setGroupMembers(group.id, [op.id])
    licence = await store.getLicence(100)
    for nick in nicks:
        op = await store.getOperator(100, nick)
        agent = EchoAgent()
        agent.session = node.parts.core.connectOperator(licence, op, agent, client="bench")
        await agent.session.start()
    print("bench node ready", flush=True)


reactor.callWhenRunning(lambda: defer.ensureDeferred(setUp()))
