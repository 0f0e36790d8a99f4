"""
IWCS over real TCP (and TLS) on 127.0.0.1 port 0, with the real core on
sqlite and on MariaDB, driven by the client library (livechat.client):
two agents and a control through a whole chat, reconnect and resume,
licence isolation.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, serverFromString, wrapClientTLS
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial import unittest

from livechat.client import IwcsError
from livechat.model import AcceptStatus, ChatState, OperatorStatus, Role
from livechat.protocols import iwcspackets as P
from tests.support.db import bothDialects
from tests.support.iwcs import IwcsMixin
from tests.support.tls import selfSignedPEM

VISITOR = "visitor-0001"


class IntegrationMixin(IwcsMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        self.serveIwcs()
        self.op1 = yield self.agent(nick="anna")
        self.op2 = yield self.agent(nick="bob")

    @defer.inlineCallbacks
    def threeParties(self) -> Any:
        """Anna (online), Bob (away: gets no routed chat) and the website's control."""
        anna = yield self.agentClient(self.op1, status=OperatorStatus.ONLINE)
        bob = yield self.agentClient(self.op2, status=OperatorStatus.AWAY)
        control = yield self.controlClient()
        return anna, bob, control

    @defer.inlineCallbacks
    def activeChat(self, anna: Any, control: Any) -> Any:
        verified = yield control.reportVisitor(VISITOR, url="https://shop.example/", title="Shop")
        self.assertFalse(verified)
        chat = yield control.requestChat(VISITOR, name="Vera", text="Where is my parcel?")
        offer = yield anna.next(P.ChatOffered, chat=chat)
        self.assertEqual(
            (offer.visitor, offer.name, offer.text), (VISITOR, "Vera", "Where is my parcel?")
        )
        seq = yield anna.accept(chat)
        joined = yield control.next(P.JoinEvent, chat=chat)
        self.assertEqual(
            (joined.seq, joined.who, joined.visitor), (seq, f"op:{self.op1.id}", VISITOR)
        )
        return chat

    @defer.inlineCallbacks
    def test_wholeChat(self) -> Any:
        """
        A control reports a visitor and asks for a chat; it is routed to the
        agent who takes chats; messages, typing and read receipts flow both
        ways; a colleague is invited into a conference, the chat is
        transferred to her and she closes it.  The visitor (the control)
        receives every numbered event of the chat, 1, 2, 3, … with no gap.
        """
        anna, bob, control = yield self.threeParties()
        chat = yield self.activeChat(anna, control)
        visitor = anna.of(P.VisitorInfo, visitor=VISITOR)[-1]
        self.assertEqual((visitor.url, visitor.chat), ("https://shop.example/", chat))

        seq = yield anna.send(chat, "Let me look")
        message = yield control.next(P.MessageEvent, chat=chat, seq=seq)
        self.assertEqual(
            (message.text, message.role, message.visitor),
            ("Let me look", Role.ASSIGNED_AGENT, VISITOR),
        )

        seq = yield control.send(chat, "Thanks!", visitor=VISITOR)
        message = yield anna.next(P.MessageEvent, chat=chat, seq=seq)
        self.assertEqual(
            (message.text, message.role, message.sender), ("Thanks!", Role.CONSUMER, f"v:{VISITOR}")
        )

        yield control.chatState(chat, ChatState.COMPOSING, visitor=VISITOR)
        typing = yield anna.next(P.StateEvent, chat=chat)
        self.assertEqual((typing.state, typing.seq), (ChatState.COMPOSING, None))

        readSeq = yield anna.markRead(chat, [seq])
        read = yield control.next(P.ReadEvent, chat=chat, seq=readSeq)
        self.assertEqual((read.status, read.seqs), (AcceptStatus.READ, (seq,)))

        # A conference: Bob is invited, joins, speaks, leaves.
        yield anna.invite(chat, self.op2.id)
        invited = yield bob.next(P.ConferenceInvited, chat=chat)
        self.assertEqual(invited.sender, f"op:{self.op1.id}")
        yield bob.join(chat)
        seq = yield bob.send(chat, "Bob here")
        message = yield control.next(P.MessageEvent, chat=chat, seq=seq)
        self.assertEqual(message.role, Role.AGENT)
        yield bob.leave(chat)
        yield control.next(P.LeaveEvent, chat=chat, who=f"op:{self.op2.id}")

        # A transfer to Bob, who closes the chat.
        yield anna.transfer(chat, operator=self.op2.id)
        opened = yield bob.next(P.ChatOpened, chat=chat, transferred_by=f"op:{self.op1.id}")
        self.assertEqual(opened.kind, "visitor")
        transfer = yield control.next(P.TransferEvent, chat=chat)
        self.assertEqual(
            (transfer.to_operator, transfer.by_status), (f"op:{self.op2.id}", OperatorStatus.ONLINE)
        )
        yield bob.close(chat)
        closed = yield control.next(P.CloseEvent, chat=chat)
        self.assertEqual(closed.reason, "operator_closed")
        seqs = control.seqs(chat)
        self.assertEqual(seqs, list(range(1, closed.seq + 1)))
        self.assertGreaterEqual(len(seqs), 12)
        # Anna left with the transfer: she saw nothing after it.
        self.assertNotIn(closed.seq, anna.seqs(chat))

    @defer.inlineCallbacks
    def test_privateAndTeamChat(self) -> Any:
        """
        Agents talk privately and in the licence's team chat; the control
        (the visitors' side) never receives any of it.
        """
        anna, bob, control = yield self.threeParties()
        private = yield anna.privateChat(self.op2.id)
        opened = yield bob.next(P.ChatOpened, chat=private)
        self.assertEqual(opened.kind, "private")
        seq = yield anna.send(private, "psst, Bob")
        message = yield bob.next(P.MessageEvent, chat=private, seq=seq)
        self.assertEqual(message.text, "psst, Bob")

        team = anna.welcome.team
        self.assertEqual(team, bob.welcome.team)
        seq = yield bob.send(team, "hello team")
        message = yield anna.next(P.MessageEvent, chat=team, seq=seq)
        self.assertEqual(message.sender, f"op:{self.op2.id}")

        yield control.ping()  # everything before it has been delivered
        leaked = [p for p in control.packets if getattr(p, "chat", None) in (private, team)]
        self.assertEqual(leaked, [])

    @defer.inlineCallbacks
    def test_pipelinedRequestsKeepTheirOrder(self) -> Any:
        """
        Requests sent without waiting for answers are done in the order sent.
        Messages and receipts of one chat do not wait for each other's commit
        (they may share one) but are stored in that order; typing waits for
        what is before it; and messages behind a leave wait for it, so they
        are refused (the chat is closed), the second one too.
        """
        anna, bob, control = yield self.threeParties()
        chat = yield self.activeChat(anna, control)
        sent = [
            anna.send(chat, "one"),
            anna.send(chat, "two"),
            anna.markRead(chat, [1]),
            anna.send(chat, "three"),
            anna.chatState(chat, ChatState.COMPOSING),
            anna.send(chat, "four"),
        ]
        answers = yield defer.gatherResults(sent)
        seqs = answers[:4] + answers[5:]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 5)))
        last = yield control.next(P.MessageEvent, chat=chat, seq=seqs[-1])
        self.assertEqual(last.text, "four")
        texts = [
            p.text for p in control.packets if isinstance(p, P.MessageEvent) and p.chat == chat
        ]
        self.assertEqual(texts[-4:], ["one", "two", "three", "four"])

        left = control.leave(chat, visitor=VISITOR)
        after = [control.send(chat, f"after {i}", visitor=VISITOR) for i in range(2)]
        yield left
        for d in after:
            error = yield self.assertFailure(d, IwcsError)
            self.assertIn(error.name, ("wrong_state", "forbidden"))

    @defer.inlineCallbacks
    def test_resumeExactlyTheMissing(self) -> Any:
        """
        An agent whose connection drops logs in again with the last sequence
        it saw: it receives exactly the events stored meanwhile, once each,
        in order — nothing before them, nothing twice.
        """
        anna, bob, control = yield self.threeParties()
        chat = yield self.activeChat(anna, control)
        seq = yield anna.send(chat, "one moment")
        yield anna.next(P.MessageEvent, chat=chat, seq=seq)
        factory = anna.factory
        self.assertEqual(factory.lastSeqs[chat], seq)
        anna.transport.abortConnection()
        yield anna.lost
        missed = []
        for text in ("are you there?", "hello?"):
            missed.append((yield control.send(chat, text, visitor=VISITOR)))
        self.assertEqual(missed, [seq + 1, seq + 2])
        again = yield self.connectClient(factory)
        yield again.next(P.MessageEvent, chat=chat, seq=seq + 2)
        self.assertEqual(again.seqs(chat), missed)
        self.assertEqual(again.welcome.chats, (chat,))
        # Live again: the next one arrives too.
        seq = yield control.send(chat, "ah, good", visitor=VISITOR)
        yield again.next(P.MessageEvent, chat=chat, seq=seq)
        self.assertEqual(again.seqs(chat), missed + [seq])

    @defer.inlineCallbacks
    def test_controlResumesItsVisitors(self) -> Any:
        """
        A control that reconnects follows its visitors again by itself, with
        their last sequences: it receives the agent's messages it missed.
        """
        anna, bob, control = yield self.threeParties()
        chat = yield self.activeChat(anna, control)
        factory = control.factory
        last = factory.lastSeqs[chat]
        control.transport.abortConnection()
        yield control.lost
        seq = yield anna.send(chat, "still there?")
        again = yield self.connectClient(factory)
        message = yield again.next(P.MessageEvent, chat=chat, seq=seq)
        self.assertEqual(message.visitor, VISITOR)
        self.assertEqual(again.seqs(chat), list(range(last + 1, seq + 1)))

    @defer.inlineCallbacks
    def test_reconnectingService(self) -> Any:
        """
        IwcsClientService logs in, reconnects by itself after the connection
        is cut, and resumes: a message stored meanwhile arrives.
        """
        anna, bob, control = yield self.threeParties()
        chat = yield self.activeChat(anna, control)
        factory = self.clientFactory(
            self.op2.licence, nick=self.op2.nick, password="correct horse battery"
        )
        service = self.service(factory)
        first = yield service.whenLoggedIn()
        yield anna.invite(chat, self.op2.id)
        yield first.next(P.ConferenceInvited, chat=chat)
        yield first.join(chat)
        first.transport.abortConnection()
        yield first.lost
        seq = yield control.send(chat, "for Bob", visitor=VISITOR)
        second = yield service.whenLoggedIn()
        self.assertIsNot(second, first)
        message = yield second.next(P.MessageEvent, chat=chat, seq=seq)
        self.assertEqual(message.text, "for Bob")

    @defer.inlineCallbacks
    def test_licenceIsolation(self) -> Any:
        """
        An agent of another licence sees none of licence 100's visitors or
        chats, and cannot act on them: its attempts are refused with errors
        and change nothing.
        """
        anna, bob, control = yield self.threeParties()
        stranger = yield self.agent(licence=200, nick="eve")
        eve = yield self.agentClient(stranger)
        chat = yield self.activeChat(anna, control)
        for attempt in (
            eve.send(chat, "hi from elsewhere"),
            eve.accept(chat),
            eve.close(chat),
            eve.join(chat),
            eve.history(VISITOR),
        ):
            try:
                result = yield attempt
            except IwcsError as e:
                self.assertIn(e.name, ("forbidden", "wrong_state", "not_found"), e)
            else:
                self.assertEqual(result, [], "only history may answer, with nothing")
        seq = yield anna.send(chat, "still private")
        yield control.next(P.MessageEvent, chat=chat, seq=seq)
        yield eve.ping()
        self.assertEqual(eve.of(P.VisitorInfo), [])
        self.assertEqual(
            [p for p in eve.packets if isinstance(p, P.ChatEvent) and p.chat == chat], []
        )
        self.assertNotIn("hi from elsewhere", [p.text for p in control.of(P.MessageEvent)])

    @defer.inlineCallbacks
    def test_loginRefused(self) -> Any:
        """A wrong password fails the login with login_failed and stops the service."""
        factory = self.clientFactory(self.op1.licence, nick=self.op1.nick, password="wrong")
        service = self.service(factory)
        failure = yield self.assertFailure(service.whenLoggedIn(), IwcsError)
        self.assertEqual((failure.code, failure.name), (420, "login_failed"))
        self.assertFalse(service.running)


globals().update(bothDialects(IntegrationMixin, "IwcsIntegrationTests"))


class IwcsTLSTests(IwcsMixin, unittest.TestCase):
    """IWCS over TLS with a generated certificate (an ssl: endpoint, as IWCS_LISTEN takes)."""

    @defer.inlineCallbacks
    def test_tls(self) -> Any:
        """An agent logs in and pings over TLS; the certificate is checked."""
        pem = selfSignedPEM("localhost")
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(pem)
        endpoint = serverFromString(
            reactor, f"ssl:0:interface=127.0.0.1:privateKey={path}:certKey={path}"
        )
        port = yield endpoint.listen(self.factory)
        self.addCleanup(port.stopListening)
        op = yield self.agent(nick="tls")
        options = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(pem))
        client = yield self.connectClient(
            self.clientFactory(op.licence, nick=op.nick, password="correct horse battery"),
            wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)),
        )
        self.assertEqual(client.welcome.nick, "tls")
        now = yield client.ping()
        self.assertGreater(now, 0)
