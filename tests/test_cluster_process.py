"""
Several livechat processes for real (issue 7): two ``twistd -n livechat``
nodes on one MariaDB database and a private Redis, haproxy in front (from
etc/haproxy.cfg), visitors on the widget's WebSocket and agents on IWCS
(livechat.client), all over real sockets:

  - a visitor on one node chats with an agent on the other: messages both
    ways, typing, read receipts, the visitor list, presence, queue places;
    agents on two nodes transfer, hold a conference, use the team chat and
    a private chat;
  - the agent's node is SIGKILLed; the agent reconnects through haproxy,
    lands on the other node, and resumes every chat: nothing lost, nothing
    twice;
  - the agent never comes back: the janitor of the surviving node hands
    the chat to a colleague there;
  - Redis is restarted (empty) mid-chat and the chats go on.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from livechat.model import ChatState, OperatorStatus
from livechat.protocols import iwcspackets as P
from tests.support.cluster import Cluster, until
from tests.support.core import isEvent, isType
from tests.support.web import WSClient, sent


def reply(m: dict[str, Any]) -> Any:
    assert m["type"] == "reply", m
    return m["result"]


def fromAgent(chatId: int, text: str) -> Any:
    """A visitor's predicate: the agent's message C{text} in chat C{chatId}."""

    def check(m: dict[str, Any]) -> bool:
        return isEvent("ContentEvent", chatId, message=text)(m) and m["originatorId"].startswith(
            "op:"
        )

    return check


def seen(visitor: WSClient, predicate: Any, what: str) -> defer.Deferred[Any]:
    """Fires once the visitor has received a message matching C{predicate}, whenever it came."""
    return until(lambda: any(predicate(m) for m in visitor.inbox.messages), what, 20)


def assertStrictlyNumbered(testcase: unittest.TestCase, seqs: list[int], what: str) -> None:
    """Sequences 1, 2, 3, ... with no gap and none twice."""
    testcase.assertEqual(seqs, list(range(1, len(seqs) + 1)), what)


@defer.inlineCallbacks
def activeChat(visitor: WSClient, agent: Any, text: str) -> Any:
    """The visitor asks (with a first message); the agent is offered the chat and accepts."""
    chatId = reply((yield visitor.ask("chat.request", name="Vera", message=text)))["chatId"]
    offer = yield agent.next(P.ChatOffered, chat=chatId, timeout=20)
    assert offer.text == text, offer
    yield agent.accept(chatId)
    yield visitor.next(isEvent("JoinEvent", chatId), timeout=20)
    return chatId


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

    @defer.inlineCallbacks
    def test_chatAcrossNodes(self) -> Any:
        """
        Visitors on node 1 and an agent on node 2 (and a colleague on node
        1): the queue places, the button going online for the visitor when
        the agent logs in elsewhere, the visitor list and the live visitor
        updates, the agents' presence, messages both ways, typing both ways,
        read receipts both ways; every chat numbered +1 on both sides.
        """
        cluster = yield Cluster(self).start(operators=("anna", "otto"))
        a, b = cluster.nodes
        v1, welcome = yield cluster.visitor(a.url, a.wsURL)
        self.assertFalse(welcome["reception"]["online"])
        v2, _ = yield cluster.visitor(a.url, a.wsURL)
        c1 = reply((yield v1.ask("chat.request", name="Vera", message="hello from A")))["chatId"]
        yield v1.next(isType("chat.queue", chatId=c1, position=1))
        c2 = reply((yield v2.ask("chat.request", name="Walt", message="me too")))["chatId"]
        yield v2.next(isType("chat.queue", chatId=c2, position=2))

        # A colleague on node 1 (away: takes no chats) sees anna come online on node 2.
        otto = yield cluster.agent(
            cluster.agentFactory("otto", status=OperatorStatus.AWAY), a.iwcsEndpoint()
        )
        anna = yield cluster.agent(cluster.agentFactory("anna"), b.iwcsEndpoint())
        annaId = cluster.operators["anna"][0].id
        yield otto.next(P.OperatorInfo, operator=annaId, status=OperatorStatus.ONLINE, timeout=20)
        yield seen(v1, isType("licence.status", online=True), "the button online for v1")
        present = {info.operator: info.status for info in (yield otto.operators())}
        self.assertEqual(present.get(annaId), OperatorStatus.ONLINE)

        # Both waiting chats are offered to anna (queue place 0).
        for visitor, chatId, text in ((v1, c1, "hello from A"), (v2, c2, "me too")):
            offer = yield anna.next(P.ChatOffered, chat=chatId, timeout=20)
            self.assertEqual(offer.text, text)
            yield seen(visitor, isType("chat.queue", chatId=chatId, position=0), "offered")

        # The visitors on node 1 are in the list anna gets on node 2, live too.
        listed = {v.visitor for v in (yield anna.visitors())}
        ids = {v1.welcome["visitorId"], v2.welcome["visitorId"]}  # type: ignore[attr-defined]
        self.assertTrue(ids <= listed, (ids, listed))
        yield v1.ask("page.view", url="https://shop.example/cart", title="Cart")
        yield anna.next(
            P.VisitorInfo,
            visitor=v1.welcome["visitorId"],  # type: ignore[attr-defined]
            url="https://shop.example/cart",
            timeout=20,
        )

        # She takes them.
        for visitor, chatId in ((v1, c1), (v2, c2)):
            yield anna.accept(chatId)
            yield visitor.next(isEvent("JoinEvent", chatId), timeout=20)

        # Messages, typing and read receipts both ways, across the nodes.
        seq = sent((yield v1.ask("chat.send", chatId=c1, text="my order is late")))
        got = yield anna.next(P.MessageEvent, chat=c1, text="my order is late", timeout=20)
        self.assertEqual(got.seq, seq)
        reply((yield v1.ask("chat.state", chatId=c1, state="COMPOSING")))
        yield anna.next(P.StateEvent, chat=c1, state=ChatState.COMPOSING, timeout=20)
        yield anna.chatState(c1, ChatState.COMPOSING)
        yield v1.next(isEvent("ChatStateEvent", c1, chatState="COMPOSING"), timeout=20)
        answer = yield anna.send(c1, "let me look")
        message = yield v1.next(fromAgent(c1, "let me look"), timeout=20)
        self.assertEqual(message["sequence"], answer)
        reply((yield v1.ask("chat.read", chatId=c1, sequences=[answer])))
        read = yield anna.next(P.ReadEvent, chat=c1, timeout=20)
        self.assertEqual(read.seqs, (answer,))
        yield anna.markRead(c1, [seq])
        receipt = yield v1.next(
            lambda m: isEvent("AcceptStatusEvent", c1)(m) and m["originatorId"].startswith("op:"),
            timeout=20,
        )
        self.assertEqual(receipt["event"]["sequenceList"], [seq])
        other = yield anna.send(c2, "and you?")
        yield v2.next(fromAgent(c2, "and you?"), timeout=20)

        for chatId, visitor, upTo in ((c1, v1, receipt["sequence"]), (c2, v2, other)):
            yield until(
                lambda c=chatId, v=visitor, n=upTo: (
                    anna.seqs(c)[-1:] == [n] and v.inbox.sequences(c)[-1:] == [n]
                ),
                "both sides caught up",
            )
            assertStrictlyNumbered(self, visitor.inbox.sequences(chatId), f"visitor, chat {chatId}")
            assertStrictlyNumbered(self, anna.seqs(chatId), f"agent, chat {chatId}")

    @defer.inlineCallbacks
    def test_transferConferenceTeamAcrossNodes(self) -> Any:
        """
        Agents on different nodes: anna (node 2) transfers the visitor's
        chat to otto (node 1), who sees its history and talks to the
        visitor; otto invites anna back into a conference and she joins; the
        team chat and a private chat between them carry messages across the
        nodes; every chat numbered +1 on every side.
        """
        cluster = yield Cluster(self).start(operators=("anna", "otto"))
        a, b = cluster.nodes
        annaId = cluster.operators["anna"][0].id
        ottoId = cluster.operators["otto"][0].id
        visitor, _ = yield cluster.visitor(a.url, a.wsURL)
        anna = yield cluster.agent(cluster.agentFactory("anna"), b.iwcsEndpoint())
        chatId = yield activeChat(visitor, anna, "a question")
        otto = yield cluster.agent(
            cluster.agentFactory("otto", status=OperatorStatus.AWAY), a.iwcsEndpoint()
        )

        yield anna.transfer(chatId, operator=ottoId)
        yield otto.next(P.ChatOpened, chat=chatId, timeout=20)
        history = yield otto.next(P.MessageEvent, chat=chatId, text="a question", timeout=20)
        self.assertEqual(history.seq, 1)
        yield seen(
            visitor,
            lambda m: isEvent("TransferEvent", chatId)(m),
            "the visitor told of the transfer",
        )
        yield otto.send(chatId, "otto takes over")
        yield visitor.next(fromAgent(chatId, "otto takes over"), timeout=20)

        yield otto.invite(chatId, annaId)
        yield anna.next(P.ConferenceInvited, chat=chatId, timeout=20)
        yield anna.join(chatId)
        sent((yield visitor.ask("chat.send", chatId=chatId, text="hello both")))
        yield otto.next(P.MessageEvent, chat=chatId, text="hello both", timeout=20)
        yield anna.next(P.MessageEvent, chat=chatId, text="hello both", timeout=20)

        assert anna.welcome is not None and otto.welcome is not None
        team = anna.welcome.team
        self.assertEqual(team, otto.welcome.team)
        yield anna.send(team, "team: coffee?")
        yield otto.next(P.MessageEvent, chat=team, text="team: coffee?", timeout=20)
        private = yield otto.privateChat(annaId)
        yield otto.send(private, "just between us")
        yield anna.next(P.MessageEvent, chat=private, text="just between us", timeout=20)

        last = yield otto.send(chatId, "bye")
        yield until(
            lambda: (
                anna.seqs(chatId)[-1:] == [last] and visitor.inbox.sequences(chatId)[-1:] == [last]
            ),
            "everyone caught up",
        )
        assertStrictlyNumbered(self, visitor.inbox.sequences(chatId), "visitor")
        assertStrictlyNumbered(self, otto.seqs(chatId), "otto, from the history on")

    @defer.inlineCallbacks
    def test_agentsNodeKilled(self) -> Any:
        """
        The agent's node is SIGKILLed mid-chat.  haproxy takes it out; the
        agent reconnects through haproxy (TLS), lands on the surviving node
        and resumes both chats from its last sequences: what the visitors
        sent meanwhile arrives, every message acknowledged before the kill
        is there, every chat is numbered +1 across the two connections with
        nothing twice, and the chats go on.
        """
        cluster = yield Cluster(self).start()
        a, b = cluster.nodes
        assert cluster.haproxy is not None
        v1, _ = yield cluster.visitor(a.url, a.wsURL)
        v2, _ = yield cluster.visitor(a.url, a.wsURL)
        factory = cluster.agentFactory("anna")
        before = yield cluster.agent(factory, b.iwcsEndpoint())
        c1 = yield activeChat(v1, before, "first chat")
        c2 = yield activeChat(v2, before, "second chat")
        acked: dict[int, dict[int, str]] = {c1: {}, c2: {}}
        for i in range(3):
            for visitor, chatId in ((v1, c1), (v2, c2)):
                text = f"visitor {chatId} #{i}"
                seq = sent((yield visitor.ask("chat.send", chatId=chatId, text=text)))
                acked[chatId][seq] = text
                text = f"agent {chatId} #{i}"
                acked[chatId][(yield before.send(chatId, text))] = text
        for chatId in (c1, c2):
            # The agent has seen everything up to its own last message.
            yield until(
                lambda c=chatId: factory.lastSeqs.get(c) == max(acked[c]), "agent up to date"
            )
        seen = {chatId: factory.lastSeqs[chatId] for chatId in (c1, c2)}

        yield cluster.kill(1)
        yield cluster.haproxy.serverDown("node2")
        yield before.lost
        while_away = {}
        for visitor, chatId in ((v1, c1), (v2, c2)):
            text = f"while the agent is away {chatId}"
            while_away[chatId] = sent((yield visitor.ask("chat.send", chatId=chatId, text=text)))
            acked[chatId][while_away[chatId]] = text

        after = yield cluster.agent(factory, cluster.haproxy.iwcsEndpoint())
        # haproxy sent the agent to the surviving node.
        self.assertIn("IWCS agent anna of licence 100 logged in", a.output)
        for chatId in (c1, c2):
            got = yield after.next(
                P.MessageEvent, chat=chatId, text=f"while the agent is away {chatId}", timeout=30
            )
            self.assertEqual(got.seq, while_away[chatId])
            # Exactly the missed events: from the one after the last seen.
            resumed = after.seqs(chatId)
            self.assertEqual(resumed[0], seen[chatId] + 1, (chatId, resumed, seen))
            assertStrictlyNumbered(
                self, before.seqs(chatId) + resumed, f"agent across the reconnect, chat {chatId}"
            )
            texts = {
                p.seq: p.text
                for p in before.packets + after.packets
                if isinstance(p, P.MessageEvent) and p.chat == chatId
            }
            for seq, text in acked[chatId].items():
                self.assertEqual(texts.get(seq), text, (chatId, seq))

        # The chats go on, on the surviving node.
        answer = yield after.send(c1, "I am back")
        yield v1.next(fromAgent(c1, "I am back"), timeout=20)
        more = sent((yield v2.ask("chat.send", chatId=c2, text="good")))
        yield after.next(P.MessageEvent, chat=c2, seq=more, timeout=20)
        for chatId, visitor, upTo in ((c1, v1, answer), (c2, v2, more)):
            yield until(
                lambda c=chatId, v=visitor, n=upTo: v.inbox.sequences(c)[-1:] == [n],
                "visitor caught up",
            )
            assertStrictlyNumbered(self, visitor.inbox.sequences(chatId), f"visitor, chat {chatId}")
            assertStrictlyNumbered(
                self, before.seqs(chatId) + after.seqs(chatId), f"agent, chat {chatId}"
            )

    @defer.inlineCallbacks
    def test_redisRestarted(self) -> Any:
        """
        Redis is stopped mid-chat and started again (empty).  Meanwhile
        messages between participants on the same node flow live; those
        between nodes are stored and acknowledged, and arrive once Redis is
        back (the nodes resubscribe and fill the gap from the database).
        Then the agent's presence and routing are back in the empty Redis
        (a new chat from the other node reaches the agent), and every chat
        is numbered +1 on both sides with nothing twice.
        """
        cluster = yield Cluster(self).start()
        a, b = cluster.nodes
        far, _ = yield cluster.visitor(a.url, a.wsURL)  # node 1: across Redis
        near, _ = yield cluster.visitor(b.url, b.wsURL)  # node 2, with the agent
        anna = yield cluster.agent(cluster.agentFactory("anna"), b.iwcsEndpoint())
        cFar = yield activeChat(far, anna, "from the far node")
        cNear = yield activeChat(near, anna, "from the near node")

        cluster.redis.stop()
        yield until(
            lambda: all("redis: subscriber lost" in n.output for n in cluster.nodes),
            "both nodes noticing Redis is gone",
        )
        # Same node: live.
        yield near.ask("chat.send", chatId=cNear, text="near, during")
        yield anna.next(P.MessageEvent, chat=cNear, text="near, during", timeout=20)
        yield anna.send(cNear, "near reply, during")
        yield near.next(fromAgent(cNear, "near reply, during"), timeout=20)
        # Across nodes: stored and acknowledged now, delivered after.
        farSeq = sent((yield far.ask("chat.send", chatId=cFar, text="far, during")))
        replySeq = yield anna.send(cFar, "far reply, during")

        cluster.redis.start()
        yield until(
            lambda: all(n.output.count("redis: subscriber up") >= 2 for n in cluster.nodes),
            "both nodes back on Redis",
        )
        got = yield anna.next(P.MessageEvent, chat=cFar, text="far, during", timeout=30)
        self.assertEqual(got.seq, farSeq)
        echoed = yield far.next(fromAgent(cFar, "far reply, during"), timeout=30)
        self.assertEqual(echoed["sequence"], replySeq)

        # The chat goes on, both ways.
        after = sent((yield far.ask("chat.send", chatId=cFar, text="far, after")))
        yield anna.next(P.MessageEvent, chat=cFar, seq=after, timeout=20)
        last = yield anna.send(cFar, "far reply, after")
        yield far.next(fromAgent(cFar, "far reply, after"), timeout=20)

        # Presence and routing are back in the empty Redis.
        late, _ = yield cluster.visitor(a.url, a.wsURL)
        cLate = reply((yield late.ask("chat.request", message="anyone?")))["chatId"]
        yield anna.next(P.ChatOffered, chat=cLate, timeout=30)

        for chatId, visitor in ((cFar, far), (cNear, near)):
            assertStrictlyNumbered(self, visitor.inbox.sequences(chatId), f"visitor, chat {chatId}")
            assertStrictlyNumbered(self, anna.seqs(chatId), f"agent, chat {chatId}")
        self.assertEqual(far.inbox.sequences(cFar)[-1], last)

    @defer.inlineCallbacks
    def test_agentNeverBack(self) -> Any:
        """
        The agent's node is SIGKILLed and the agent never comes back: once
        their presence has expired in Redis (PRESENCE_TTL, 3 s here) and
        OPERATOR_GRACE (1 s) has passed, the surviving node's janitor hands
        the chat back to routing (the visitor sees the agent leave,
        "disconnected"), and it is offered to the colleague on the
        surviving node, who takes it and answers.
        """
        cluster = yield Cluster(
            self,
            settings={"PRESENCE_TTL": "3", "OPERATOR_GRACE": "1", "ORPHAN_SWEEP_INTERVAL": "1"},
        ).start(operators=("anna", "otto"))
        a, b = cluster.nodes
        visitor, _ = yield cluster.visitor(a.url, a.wsURL)
        anna = yield cluster.agent(cluster.agentFactory("anna"), b.iwcsEndpoint())
        chatId = yield activeChat(visitor, anna, "hello")
        otto = yield cluster.agent(cluster.agentFactory("otto"), a.iwcsEndpoint())
        annaRef = f"op:{cluster.operators['anna'][0].id}"

        yield cluster.kill(1)
        left = yield visitor.next(isEvent("LeaveEvent", chatId, reason="disconnected"), timeout=60)
        self.assertEqual(left["originatorId"], annaRef)
        yield otto.next(P.ChatOffered, chat=chatId, timeout=30)
        yield otto.accept(chatId)
        yield otto.send(chatId, "otto here")
        yield visitor.next(fromAgent(chatId, "otto here"), timeout=20)
        assertStrictlyNumbered(self, visitor.inbox.sequences(chatId), "visitor")
        self.assertEqual(
            len([m for m in visitor.inbox.messages if isEvent("LeaveEvent", chatId)(m)]), 1
        )
