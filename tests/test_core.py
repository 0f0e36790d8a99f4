"""
The chat core, end to end through its sessions: a real store (sqlite and
MariaDB), the memory bus and router, a task.Clock for every timer.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from livechat.core.errors import CoreError
from livechat.core.hub import CoreSettings
from livechat.model import ChatState, ChatStatus, OperatorStatus, operatorRef
from tests.support.core import CoreMixin, isEvent, isType
from tests.support.db import bothDialects


def deleteGroupAfterCheck(test: unittest.TestCase, ls: Any) -> None:
    """The core's next group check sees the group, which is then deleted at once."""
    check = ls.groupExists

    @defer.inlineCallbacks
    def existedThenGone(groupId: int) -> Any:
        existed = yield check(groupId)
        yield ls.deleteGroup(groupId)
        return existed

    test.patch(ls, "groupExists", existedThenGone)


class ChatFlowMixin(CoreMixin):
    @defer.inlineCallbacks
    def test_conversation(self) -> Any:
        """
        A visitor asks with a first message, the operator is offered the chat
        and accepts; messages, typing and read receipts flow both ways; every
        numbered event is +1 with no gap and both sides see the same list.
        """
        op = yield self.operator(nick="anna")
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "Hi, is anyone there?")

        seq = yield agent.send(chatId, "Hello Vera, how can I help?")
        got = yield vchan.next(
            isEvent("ContentEvent", chatId, message="Hello Vera, how can I help?")
        )
        self.assertEqual(got["sequence"], seq)
        self.assertEqual(
            got["originatorMetadata"],
            {"id": operatorRef(op.id), "role": "ASSIGNED_AGENT", "name": "Anna"},
        )

        yield visitor.chatState(chatId, ChatState.COMPOSING)
        typing = yield achan.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        self.assertNotIn("sequence", typing)
        seq2 = yield visitor.send(chatId, "My order is late")
        yield achan.next(isEvent("ContentEvent", chatId, message="My order is late"))
        self.assertEqual(seq2, seq + 1)

        readSeq = yield agent.markRead(chatId, [seq2])
        receipt = yield vchan.next(isEvent("AcceptStatusEvent", chatId))
        self.assertEqual(receipt["event"]["status"], "READ")
        self.assertEqual(receipt["event"]["sequenceList"], [seq2])
        self.assertEqual(receipt["sequence"], readSeq)

        yield achan.next(isEvent("AcceptStatusEvent", chatId))
        self.assertEqual(vchan.sequences(chatId), list(range(1, readSeq + 1)))
        self.assertEqual(achan.sequences(chatId), list(range(1, readSeq + 1)))
        self.assertEqual(
            [m["event"]["type"] for m in vchan.chatEvents(chatId)],
            ["ContentEvent", "JoinEvent", "ContentEvent", "ContentEvent", "AcceptStatusEvent"],
        )

    @defer.inlineCallbacks
    def test_storedBeforeAcknowledged(self) -> Any:
        """When a send fires with its sequence, that event is already committed."""
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        seq = yield visitor.send(chatId, "stored?")
        stored = yield self.store.forLicence(100).eventsAfter(chatId, seq - 1)
        self.assertEqual([(e.seq, e.event["message"]) for e in stored], [(seq, "stored?")])

    @defer.inlineCallbacks
    def test_sendInFeed(self) -> Any:
        """
        sendInFeed fires with the stored message itself and the sending
        session's channel is not given it; the visitor's other session gets
        it as usual.  Every sequence reaches each once, in order.
        """
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        tab, tchan = yield self.connectVisitor(pageView=False)
        message = yield visitor.sendInFeed(chatId, "one answer")
        self.assertEqual(
            (message["type"], message["chatId"], message["event"]["message"]),
            ("chat.event", chatId, "one answer"),
        )
        seq = message["sequence"]
        got = yield achan.next(isEvent("ContentEvent", chatId, message="one answer"))
        self.assertEqual(got["sequence"], seq)
        yield tchan.next(isEvent("ContentEvent", chatId, message="one answer"))
        after = yield agent.send(chatId, "after it")
        yield vchan.next(isEvent("ContentEvent", chatId, message="after it"))
        self.assertEqual(vchan.sequences(chatId), [s for s in range(1, after + 1) if s != seq])
        self.assertEqual(tchan.sequences(chatId), list(range(1, after + 1)))

    @defer.inlineCallbacks
    def test_claimAnsweredWhenFeedStops(self) -> Any:
        """
        An own event claimed but not yet reached by the feed (its bus
        message still on the way) is answered when the session stops
        following the chat, and when the session goes: never left hanging.
        """
        from livechat.storage.chats import StoredEvent

        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        last = visitor.feeds[chatId].last

        def ahead(n: int) -> StoredEvent:
            return StoredEvent(
                chat_id=chatId,
                seq=last + n,
                created_at=0,
                originator=visitor.ref,
                role="CONSUMER",
                name="Vera",
                event={"type": "ContentEvent", "contentType": "text/plain", "message": f"m{n}"},
            )

        first = visitor._claimed(visitor._claim(ahead(5)))
        self.assertFalse(first.called)
        visitor.unwatch(chatId)
        answer = self.successResultOf(first)
        self.assertEqual((answer["sequence"], answer["event"]["message"]), (last + 5, "m5"))
        yield defer.ensureDeferred(visitor.watch(chatId, last))
        second = visitor._claimed(visitor._claim(ahead(6)))
        self.assertFalse(second.called)
        visitor.disconnect()
        self.assertEqual(self.successResultOf(second)["sequence"], last + 6)
        self.assertEqual(visitor._claims, {})

    @defer.inlineCallbacks
    def test_resumeExactlyMissing(self) -> Any:
        """
        A visitor who reconnects saying the last sequence it saw gets exactly
        the events after it, once each, in order; then live events follow.
        """
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        seen = vchan.sequences(chatId)[-1]
        visitor.disconnect()
        sent = []
        for text in ("one", "two", "three"):
            sent.append((yield agent.send(chatId, text)))
        again, vchan2 = yield self.connectVisitor(resume={chatId: seen}, pageView=False)
        yield vchan2.next(isEvent("ContentEvent", chatId, message="three"))
        self.assertEqual(vchan2.sequences(chatId), sent)
        live = yield agent.send(chatId, "four")
        yield vchan2.next(isEvent("ContentEvent", chatId, message="four"))
        self.assertEqual(vchan2.sequences(chatId), sent + [live])

    @defer.inlineCallbacks
    def test_resumeFromZero(self) -> Any:
        """A fresh tab (nothing seen) gets the whole open chat."""
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        last = yield agent.send(chatId, "hi")
        tab, tabchan = yield self.connectVisitor(pageView=False)
        yield tabchan.next(isEvent("ContentEvent", chatId, message="hi"))
        self.assertEqual(tabchan.sequences(chatId), list(range(1, last + 1)))

    @defer.inlineCallbacks
    def test_operatorReconnectResumes(self) -> Any:
        """An operator's new connection follows every open chat from where it was."""
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        seen = achan.sequences(chatId)[-1]
        agent.disconnect()
        yield visitor.send(chatId, "are you there?")
        agent2, achan2 = yield self.connectOperator(op, resume={chatId: seen})
        yield achan2.next(isEvent("ContentEvent", chatId, message="are you there?"))
        self.assertEqual(achan2.sequences(chatId), [seen + 1])

    @defer.inlineCallbacks
    def test_close(self) -> Any:
        """
        The operator closes: both see CloseEvent, the chat is closed, the
        operator's capacity is free again, and OPERATOR_STOPED_CHAT carries
        the transcript.
        """
        op = yield self.operator(max_chats=1)
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan, "first words")
        yield agent.send(chatId, "bye now")
        yield agent.close(chatId)
        closed = yield vchan.next(isEvent("CloseEvent", chatId))
        self.assertEqual(closed["event"]["reason"], "operator_closed")
        chat = yield self.store.forLicence(100).getChat(chatId)
        self.assertEqual(chat.status, ChatStatus.CLOSED)
        self.assertEqual((yield self.router.load(100, op.id)), [])
        [(licence, event)] = self.notifier.named("OPERATOR_STOPED_CHAT")
        self.assertEqual(licence, 100)
        self.assertEqual(event.fields["OPERATOR_ID"], op.operator_id)
        self.assertEqual(event.fields["CLIENT_ID"], "visitor-0001")
        self.assertEqual(event.fields["GROUP"], chatId)
        self.assertRegex(
            event.fields["CHAT"], r"^\[[\d :-]+\] Vera: first words\n\[[\d :-]+\] Op\w*: bye now$"
        )
        yield self.assertFailure(visitor.send(chatId, "late"), CoreError)
        logged = [e[2] for e in (yield self.store.forLicence(100).events())]
        self.assertIn("OPERATOR_STOPED_CHAT", logged)

    @defer.inlineCallbacks
    def test_visitorLeaves(self) -> Any:
        """The visitor ending the chat is VISITOR_LEFT_CHAT, distinct from an operator close."""
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        yield visitor.leave(chatId)
        event = yield achan.next(isEvent("CloseEvent", chatId))
        self.assertEqual(event["event"]["reason"], "visitor_left")
        self.assertEqual(event["originatorMetadata"]["role"], "CONSUMER")
        [(_, left)] = self.notifier.named("VISITOR_LEFT_CHAT")
        self.assertEqual(left.fields["OPERATOR_ID"], op.operator_id)
        self.assertEqual(self.notifier.named("OPERATOR_STOPED_CHAT"), [])
        # A new chat starts fresh.
        second = yield visitor.requestChat(message="me again")
        self.assertNotEqual(second, chatId)

    @defer.inlineCallbacks
    def test_chatStarted(self) -> Any:
        """CHAT_STARTED is recorded when the operator accepts, with the seed's fields."""
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op, status=OperatorStatus.TEXT_AVAILABLE)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        [(_, started)] = self.notifier.named("CHAT_STARTED")
        self.assertEqual(
            started.fields,
            {"CLIENT_ID": "visitor-0001", "OPERATOR_ID": op.operator_id, "STATUS": 3},
        )
        self.assertEqual(started.chat_id, chatId)

    @defer.inlineCallbacks
    def test_badInput(self) -> Any:
        """Each bad request is a CoreError with a clear code; nothing is stored."""
        op = yield self.operator()
        agent, achan = yield self.connectOperator(op)
        visitor, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(visitor, vchan, agent, achan)
        before = (yield self.store.forLicence(100).getChat(chatId)).last_seq
        cases = [
            (lambda: visitor.send(chatId, ""), "bad_request"),
            (lambda: visitor.send(chatId, "x" * 4001), "too_large"),
            (lambda: visitor.send(chatId, 42), "bad_request"),
            (lambda: visitor.send(chatId + 1, "hi"), "forbidden"),
            (lambda: visitor.chatState(chatId, "DANCING"), "bad_request"),
            (lambda: visitor.markRead(chatId, []), "bad_request"),
            (lambda: visitor.markRead(chatId, [0]), "bad_request"),
            (lambda: visitor.markRead(chatId, ["1"]), "bad_request"),
            (lambda: visitor.markRead(chatId, [before + 5]), "bad_request"),
            (lambda: agent.accept(chatId), "wrong_state"),
            (lambda: agent.transfer(chatId), "bad_request"),
            (lambda: agent.transfer(chatId, toOperator=op.id), "bad_request"),
            (lambda: agent.transfer(chatId, toOperator=99999), "unavailable"),
            (lambda: agent.transfer(chatId, toGroup=99999), "not_found"),
            (lambda: agent.inviteVisitor("nobody-here-1"), "not_found"),
            (lambda: agent.privateChat(op.id), "bad_request"),
            (lambda: visitor.requestChat(message="again"), "wrong_state"),
            (lambda: visitor.answerInvitation(True), "not_found"),
        ]
        for call, code in cases:
            try:
                yield defer.maybeDeferred(call)
            except CoreError as e:
                self.assertEqual(e.code, code, e.message)
            else:
                self.fail(f"no error for case {code}")
        self.assertEqual((yield self.store.forLicence(100).getChat(chatId)).last_seq, before)


globals().update(bothDialects(ChatFlowMixin, "ChatFlowTests"))


class RoutingMixin(CoreMixin):
    @defer.inlineCallbacks
    def test_capacityAndQueue(self) -> Any:
        """
        Two operators with one slot each and four visitors: two chats are
        offered (one each), two wait at positions 1 and 2; when a chat closes
        the head of the queue goes to the freed operator and the last one
        moves up to position 1.
        """
        a = yield self.operator(nick="ann", max_chats=1)
        b = yield self.operator(nick="bob", max_chats=1)
        sa, ca = yield self.connectOperator(a)
        sb, cb = yield self.connectOperator(b)
        visitors = []
        for i in range(4):
            visitors.append((yield self.connectVisitor(f"visitor-{i:04d}")))
        chats = []
        for session, _ in visitors:
            chats.append((yield session.requestChat(message="hi")))
        self.assertEqual(len(ca.ofType("chat.offered")), 1)
        self.assertEqual(len(cb.ofType("chat.offered")), 1)
        for (session, channel), position in zip(visitors[2:], (1, 2)):
            queued = yield channel.next(isType("chat.queue", position=position))
            self.assertEqual(queued["chatId"], chats[visitors.index((session, channel))])
        offeredToA = ca.ofType("chat.offered")[0]["chatId"]
        yield sa.accept(offeredToA)
        yield sa.close(offeredToA)
        offered = yield ca.next(isType("chat.offered", chatId=chats[2]))
        self.assertEqual(offered["chatId"], chats[2])
        yield visitors[3][1].next(isType("chat.queue", position=1))
        self.assertEqual((yield self.router.queue(100)), [chats[3]])

    @defer.inlineCallbacks
    def test_concurrentRequestsNeverOverfill(self) -> Any:
        """Twenty requests at once over 3 operators of capacity 2: exactly 6 offered."""
        ops = []
        for _ in range(3):
            op = yield self.operator(max_chats=2)
            ops.append((yield self.connectOperator(op)))
        sessions = []
        for i in range(20):
            sessions.append((yield self.connectVisitor(f"visitor-{i:04d}"))[0])
        yield defer.gatherResults([s.requestChat(message="hi") for s in sessions])
        offered = [len(channel.ofType("chat.offered")) for _, channel in ops]
        self.assertEqual(offered, [2, 2, 2])
        self.assertEqual(len((yield self.router.queue(100))), 14)

    @defer.inlineCallbacks
    def test_leastLoadedThenLongestIdle(self) -> Any:
        """A new chat goes to the operator with fewer chats; on a tie, the one idle longer."""
        a = yield self.operator(nick="ann", max_chats=5)
        b = yield self.operator(nick="bob", max_chats=5)
        sa, ca = yield self.connectOperator(a)
        self.clock.advance(10)
        sb, cb = yield self.connectOperator(b)
        v1, _ = yield self.connectVisitor("visitor-0001")
        yield v1.requestChat(message="1")
        self.assertEqual(len(ca.ofType("chat.offered")), 1, "ann waited longer")
        self.clock.advance(1)
        v2, _ = yield self.connectVisitor("visitor-0002")
        yield v2.requestChat(message="2")
        self.assertEqual(len(cb.ofType("chat.offered")), 1, "bob has fewer chats")
        self.clock.advance(1)
        v3, _ = yield self.connectVisitor("visitor-0003")
        yield v3.requestChat(message="3")
        self.assertEqual(len(ca.ofType("chat.offered")), 2, "tie: ann's last chat is older")

    @defer.inlineCallbacks
    def test_statusAndZeroCapacity(self) -> Any:
        """AWAY, INVISIBLE and capacity 0 get no routed chats; TEXT_AVAILABLE does."""
        away = yield self.operator(nick="away")
        zero = yield self.operator(nick="zero", max_chats=0)
        text = yield self.operator(nick="text")
        _, cAway = yield self.connectOperator(away, status=OperatorStatus.AWAY)
        _, cZero = yield self.connectOperator(zero)
        sText, cText = yield self.connectOperator(text, status=OperatorStatus.INVISIBLE)
        v, vchan = yield self.connectVisitor()
        chatId = yield v.requestChat(message="anyone?")
        yield vchan.next(isType("chat.queue", position=1))
        yield sText.setStatus(OperatorStatus.TEXT_AVAILABLE)
        yield cText.next(isType("chat.offered", chatId=chatId))
        self.assertEqual(cAway.ofType("chat.offered") + cZero.ofType("chat.offered"), [])

    @defer.inlineCallbacks
    def test_groups(self) -> Any:
        """A chat for a group goes only to its members, and waits while none is free."""
        sales = yield self.operator(nick="sales")
        other = yield self.operator(nick="other")
        group = yield self.store.forLicence(100).createGroup("Sales")
        yield self.store.forLicence(100).setGroupMembers(group.id, [sales.id])
        _, cOther = yield self.connectOperator(other)
        v, vchan = yield self.connectVisitor()
        chatId = yield v.requestChat(group=group.id, message="price?")
        yield vchan.next(isType("chat.queue", position=1))
        _, cSales = yield self.connectOperator(sales)
        yield cSales.next(isType("chat.offered", chatId=chatId))
        self.assertEqual(cOther.ofType("chat.offered"), [])

    @defer.inlineCallbacks
    def test_groupDeletedDuringRequest(self) -> Any:
        """
        A group deleted between a request's check and its chat's creation:
        the request is refused (not_found), and no chat waits for the group.
        """
        yield self.operator(nick="sales")  # (makes the licence)
        ls = self.store.forLicence(100)
        self.assertIs(self.store.forLicence(100), ls)
        group = yield ls.createGroup("Sales")
        v, _ = yield self.connectVisitor()
        deleteGroupAfterCheck(self, ls)
        failure = yield self.assertFailure(v.requestChat(group=group.id, message="hi"), CoreError)
        self.assertEqual(failure.code, "not_found")
        waiting = yield ls.chatsByStatus([ChatStatus.REQUESTED, ChatStatus.QUEUED])
        self.assertEqual(waiting, [])

    @defer.inlineCallbacks
    def test_acceptTimeout(self) -> Any:
        """Not accepted in time: withdrawn from the first operator, offered to the next."""
        a = yield self.operator(nick="ann")
        b = yield self.operator(nick="bob")
        sa, ca = yield self.connectOperator(a)
        self.clock.advance(1)
        sb, cb = yield self.connectOperator(b)
        v, _ = yield self.connectVisitor()
        chatId = yield v.requestChat(message="hello?")
        yield ca.next(isType("chat.offered", chatId=chatId))
        self.clock.advance(29)
        self.assertEqual(ca.ofType("chat.withdrawn"), [])
        self.clock.advance(1)
        withdrawn = yield ca.next(isType("chat.withdrawn", chatId=chatId))
        self.assertEqual(withdrawn["reason"], "timeout")
        yield cb.next(isType("chat.offered", chatId=chatId))
        yield self.assertFailure(sa.accept(chatId), CoreError)
        yield sb.accept(chatId)
        self.assertEqual((yield self.router.load(100, a.id)), [])
        self.assertEqual((yield self.router.load(100, b.id)), [chatId])


globals().update(bothDialects(RoutingMixin, "RoutingTests"))


class AgentActionsMixin(CoreMixin):
    @defer.inlineCallbacks
    def test_transferToOperator(self) -> Any:
        """
        A transfer moves the chat to the colleague, who sees the whole history;
        the first operator stops receiving it; OPERATOR_TRANSFER has the seed's
        fields with the transferring operator's status.
        """
        a = yield self.operator(nick="ann")
        b = yield self.operator(nick="bob")
        sa, ca = yield self.connectOperator(a, status=OperatorStatus.ONLINE)
        sb, cb = yield self.connectOperator(b, status=OperatorStatus.AWAY)
        v, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(v, vchan, sa, ca, "help")
        yield sa.transfer(chatId, toOperator=b.id)

        def bobJoins(m: dict[str, Any]) -> bool:
            return isEvent("JoinEvent", chatId)(m) and (
                m["event"]["participant"]["id"] == operatorRef(b.id)
            )

        joined = yield vchan.next(bobJoins)
        yield cb.next(bobJoins)
        self.assertEqual(cb.sequences(chatId), list(range(1, joined["sequence"] + 1)))
        types = [m["event"]["type"] for m in vchan.chatEvents(chatId)]
        self.assertEqual(types[-3:], ["TransferEvent", "LeaveEvent", "JoinEvent"])
        yield v.send(chatId, "still there?")
        yield cb.next(isEvent("ContentEvent", chatId, message="still there?"))
        self.assertNotIn("still there?", [m["event"].get("message") for m in ca.chatEvents(chatId)])
        yield self.assertFailure(sa.send(chatId, "me?"), CoreError)
        [(_, transfer)] = self.notifier.named("OPERATOR_TRANSFER")
        self.assertEqual(
            transfer.fields,
            {
                "CLIENT_ID": "visitor-0001",
                "NEW_OPERATOR_ID": b.operator_id,
                "OPERATOR_ID": a.operator_id,
                "STATUS": 0,
            },
        )
        self.assertEqual((yield self.router.load(100, a.id)), [])
        self.assertEqual((yield self.router.load(100, b.id)), [chatId])
        seq = yield sb.send(chatId, "Bob here")
        got = yield vchan.next(isEvent("ContentEvent", chatId, message="Bob here"))
        self.assertEqual(got["originatorMetadata"]["role"], "ASSIGNED_AGENT")
        self.assertEqual(got["sequence"], seq)

    @defer.inlineCallbacks
    def test_transferToGroup(self) -> Any:
        """A transfer to a group routes the chat to a member, not back to the sender."""
        a = yield self.operator(nick="ann")
        b = yield self.operator(nick="bob")
        group = yield self.store.forLicence(100).createGroup("Billing")
        yield self.store.forLicence(100).setGroupMembers(group.id, [a.id, b.id])
        sa, ca = yield self.connectOperator(a)
        sb, cb = yield self.connectOperator(b)
        v, vchan = yield self.connectVisitor()
        chatId = yield v.requestChat(message="bill")
        offered = yield (ca.next if ca.ofType("chat.offered") else cb.next)(
            isType("chat.offered", chatId=chatId)
        )
        first, firstChan, second, secondChan = (
            (sa, ca, sb, cb) if ca.ofType("chat.offered") else (sb, cb, sa, ca)
        )
        yield first.accept(offered["chatId"])
        yield first.transfer(chatId, toGroup=group.id)
        yield secondChan.next(isType("chat.offered", chatId=chatId))
        yield second.accept(chatId)
        chat = yield self.store.forLicence(100).getChat(chatId)
        self.assertEqual((chat.group_id, chat.operator), (group.id, second.operator.id))

    @defer.inlineCallbacks
    def test_transferToGroupDeletedMeanwhile(self) -> Any:
        """
        A group deleted between a transfer's check and the chat's move: the
        transfer is refused (not_found) and the chat stays with its operator.
        """
        a = yield self.operator(nick="ann")
        ls = self.store.forLicence(100)
        group = yield ls.createGroup("Billing")
        sa, ca = yield self.connectOperator(a)
        v, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(v, vchan, sa, ca, "bill")
        deleteGroupAfterCheck(self, ls)
        failure = yield self.assertFailure(sa.transfer(chatId, toGroup=group.id), CoreError)
        self.assertEqual(failure.code, "not_found")
        chat = yield ls.getChat(chatId)
        self.assertEqual(
            (chat.status, chat.operator, chat.group_id), (ChatStatus.ACTIVE, a.id, None)
        )
        yield sa.send(chatId, "still mine")
        yield vchan.next(isEvent("ContentEvent", chatId, message="still mine"))

    @defer.inlineCallbacks
    def test_conference(self) -> Any:
        """
        An invited colleague joins the chat as AGENT, sees its history and its
        new messages, and can leave again while the chat goes on.
        """
        a = yield self.operator(nick="ann")
        c = yield self.operator(nick="cid")
        sa, ca = yield self.connectOperator(a)
        sc, cc = yield self.connectOperator(c, status=OperatorStatus.AWAY)
        v, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(v, vchan, sa, ca, "question")
        yield sa.invite(chatId, c.id)
        yield cc.next(isType("conference.invited", chatId=chatId))
        yield self.assertFailure(sc.send(chatId, "early"), CoreError)
        yield sc.join(chatId)
        joined = yield vchan.next(isEvent("JoinEvent", chatId))
        self.assertEqual(joined["event"]["participant"]["role"], "AGENT")
        yield cc.next(isEvent("ContentEvent", chatId, message="question"))
        yield sc.send(chatId, "expert here")
        yield vchan.next(isEvent("ContentEvent", chatId, message="expert here"))
        yield sc.leave(chatId)
        yield vchan.next(isEvent("LeaveEvent", chatId))
        yield sa.send(chatId, "thanks cid")
        yield vchan.next(isEvent("ContentEvent", chatId, message="thanks cid"))
        self.assertNotIn("thanks cid", [m["event"].get("message") for m in cc.chatEvents(chatId)])
        yield self.assertFailure(sc.join(chatId), CoreError)

    @defer.inlineCallbacks
    def test_transferBackAfterLeaving(self) -> Any:
        """
        A colleague who joined and left a conference and is then given the
        chat by transfer follows it again: the old LeaveEvent in the backlog
        replayed to them does not stop the feed, so they can act on it.
        """
        a = yield self.operator(nick="ann")
        c = yield self.operator(nick="cid")
        sa, ca = yield self.connectOperator(a)
        sc, cc = yield self.connectOperator(c, status=OperatorStatus.AWAY)
        v, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(v, vchan, sa, ca, "question")
        yield sa.invite(chatId, c.id)
        yield sc.join(chatId)
        yield sc.leave(chatId)
        yield cc.next(isEvent("LeaveEvent", chatId))
        # Whether it is still in the chat is the database's word (a transfer
        # back may cross the leave): checked in the background.
        yield self.core.settled()
        self.assertNotIn(chatId, sc.feeds)
        yield sa.transfer(chatId, toOperator=c.id)
        yield cc.next(isType("chat.opened", chatId=chatId))
        yield sc.feeds[chatId].whenReady()
        self.assertIn(chatId, sc.feeds)
        yield v.send(chatId, "still there?")
        yield cc.next(isEvent("ContentEvent", chatId, message="still there?"))
        yield sc.close(chatId)
        yield vchan.next(isEvent("CloseEvent", chatId))

    @defer.inlineCallbacks
    def test_proactiveInvitation(self) -> Any:
        """
        An operator invites a visitor: the visitor sees the invitation,
        CLIENT_INVITED is recorded; accepting starts a chat routed to the
        inviter, and CHAT_STARTED names them as INVITING_OP.
        """
        a = yield self.operator(nick="ann")
        b = yield self.operator(nick="bob")
        sa, ca = yield self.connectOperator(a)
        sb, cb = yield self.connectOperator(b)
        v, vchan = yield self.connectVisitor()
        yield sb.inviteVisitor("visitor-0001", "Can I help you?")
        invitation = yield vchan.next(isType("invitation"))
        self.assertEqual(invitation["message"], "Can I help you?")
        update = yield cb.next(
            lambda m: m.get("type") == "visitor.update" and m["visitor"]["invitation"] == "sent"
        )
        self.assertEqual(update["visitor"]["id"], "visitor-0001")
        [(_, invited)] = self.notifier.named("CLIENT_INVITED")
        self.assertEqual(
            invited.fields, {"OPERATOR_ID": b.operator_id, "CLIENT_ID": "visitor-0001"}
        )
        chatId = yield v.answerInvitation(True, name="Vera")
        yield cb.next(isType("chat.offered", chatId=chatId))
        yield sb.accept(chatId)
        [(_, started)] = self.notifier.named("CHAT_STARTED")
        self.assertEqual(started.fields["INVITING_OP"], b.operator_id)

    @defer.inlineCallbacks
    def test_invitationDeclined(self) -> Any:
        """A declined invitation is shown to agents and starts nothing."""
        a = yield self.operator()
        sa, ca = yield self.connectOperator(a)
        v, vchan = yield self.connectVisitor()
        yield sa.inviteVisitor("visitor-0001")
        yield vchan.next(isType("invitation"))
        result = yield v.answerInvitation(False)
        self.assertIsNone(result)
        answer = yield ca.next(isType("invitation.answered"))
        self.assertFalse(answer["accepted"])
        self.assertEqual(ca.ofType("chat.offered"), [])

    @defer.inlineCallbacks
    def test_privateAndTeamChat(self) -> Any:
        """
        Operators chat privately and in the licence's team chat, with
        history; visitors and other licences' operators never see either.
        """
        a = yield self.operator(nick="ann")
        b = yield self.operator(nick="bob")
        x = yield self.operator(licence=200, nick="xavier")
        sa, ca = yield self.connectOperator(a)
        sb, cb = yield self.connectOperator(b)
        sx, cx = yield self.connectOperator(x)
        v, vchan = yield self.connectVisitor()
        private = yield sa.privateChat(b.id)
        yield cb.next(isType("chat.opened", chatId=private))
        yield sa.send(private, "psst bob")
        yield cb.next(isEvent("ContentEvent", private, message="psst bob"))
        self.assertEqual((yield sb.privateChat(a.id)), private)
        [(_, start)] = self.notifier.named("PRIVATE_CHAT_STATUS")
        self.assertEqual(
            start.fields, {"OPERATOR_ID": a.operator_id, "STATUS": "start", "GROUP": private}
        )
        team = sa.teamChatId
        yield sb.send(team, "hello team")
        yield ca.next(isEvent("ContentEvent", team, message="hello team"))
        late = yield self.operator(nick="late")
        sl, cl = yield self.connectOperator(late)
        yield cl.next(isEvent("ContentEvent", team, message="hello team"))
        yield sb.close(private)
        stop = self.notifier.named("PRIVATE_CHAT_STATUS")[-1][1]
        self.assertEqual(stop.fields["STATUS"], "stop")
        self.assertNotEqual((yield sa.privateChat(b.id)), private)
        for channel in (vchan, cx):
            texts = [
                m["event"].get("message") for m in channel.messages if m.get("type") == "chat.event"
            ]
            self.assertNotIn("psst bob", texts)
            self.assertNotIn("hello team", texts)
        yield self.assertFailure(v.send(team, "sneak"), CoreError)
        yield self.assertFailure(sx.send(private, "sneak"), CoreError)
        history = yield self.store.forLicence(100).transcript(team)
        self.assertEqual([e.event["message"] for e in history], ["hello team"])


globals().update(bothDialects(AgentActionsMixin, "AgentActionsTests"))


class PresenceTests(CoreMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_onePresenceManyConnections(self) -> Any:
        """
        An operator with two connections is one presence: closing one keeps
        them online; after the last one, the grace period, then offline.
        BUTTON_STATUS follows whether anyone can take chats.
        """
        a = yield self.operator(nick="ann")
        web, wchan = yield self.connectOperator(a)
        rich, rchan = yield self.connectOperator(a, status=None)
        statuses = [e.fields["STATUS"] for _, e in self.notifier.named("BUTTON_STATUS")]
        self.assertEqual(statuses, ["online"])
        web.disconnect()
        self.assertIsNotNone((yield self.core.operatorInfo(100, a.id)))
        rich.disconnect()
        self.clock.advance(59)
        self.assertIsNotNone((yield self.core.operatorInfo(100, a.id)))
        self.clock.advance(1)
        yield self.notifier.wait("BUTTON_STATUS", 2)
        self.assertIsNone((yield self.core.operatorInfo(100, a.id)))
        statuses = [e.fields["STATUS"] for _, e in self.notifier.named("BUTTON_STATUS")]
        self.assertEqual(statuses, ["online", "offline"])
        ops = [e.fields["STATUS"] for _, e in self.notifier.named("OPERATOR_STATUS")]
        self.assertEqual(ops, [0, 2])

    @defer.inlineCallbacks
    def test_offlineWhileConnected(self) -> Any:
        """
        An operator may choose OFFLINE while connected: their waiting chat
        goes back to routing and the button goes offline; choosing ONLINE
        again makes them available again.
        """
        a = yield self.operator(nick="ann")
        sa, ca = yield self.connectOperator(a)
        v, vchan = yield self.connectVisitor()
        chatId = yield v.requestChat(message="hi")
        yield ca.next(isType("chat.offered", chatId=chatId))
        yield sa.setStatus(OperatorStatus.OFFLINE)
        yield ca.next(isType("chat.withdrawn", chatId=chatId))
        yield vchan.next(isType("chat.queue", chatId=chatId, position=1))
        self.assertFalse((yield self.core.isLicenceOnline(100)))
        info = yield self.core.operatorInfo(100, a.id)
        self.assertEqual(info.status, OperatorStatus.OFFLINE)
        yield sa.setStatus(OperatorStatus.ONLINE)
        yield ca.next(isType("chat.offered", chatId=chatId))
        self.assertTrue((yield self.core.isLicenceOnline(100)))
        buttons = [e.fields["STATUS"] for _, e in self.notifier.named("BUTTON_STATUS")]
        self.assertEqual(buttons, ["online", "offline", "online"])

    @defer.inlineCallbacks
    def test_reconnectWithinGrace(self) -> Any:
        """Reconnecting within the grace period keeps the operator's chats."""
        a = yield self.operator()
        sa, ca = yield self.connectOperator(a)
        v, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(v, vchan, sa, ca)
        sa.disconnect()
        self.clock.advance(30)
        sa2, ca2 = yield self.connectOperator(a, status=None)
        self.clock.advance(60)
        yield v.send(chatId, "hello again")
        yield ca2.next(isEvent("ContentEvent", chatId, message="hello again"))

    @defer.inlineCallbacks
    def test_goneOperatorsChatsRerouted(self) -> Any:
        """After the grace period, the operator's chats go to a colleague."""
        a = yield self.operator(nick="ann")
        b = yield self.operator(nick="bob")
        sa, ca = yield self.connectOperator(a)
        v, vchan = yield self.connectVisitor()
        chatId = yield self.activeChat(v, vchan, sa, ca)
        sb, cb = yield self.connectOperator(b, status=OperatorStatus.AWAY)
        sa.disconnect()
        yield sb.setStatus(OperatorStatus.ONLINE)
        self.clock.advance(60)
        yield cb.next(isType("chat.offered", chatId=chatId))
        left = yield vchan.next(isEvent("LeaveEvent", chatId))
        self.assertEqual(left["event"]["reason"], "disconnected")

    @defer.inlineCallbacks
    def test_agentsSeeVisitorsOfTheirLicenceOnly(self) -> Any:
        """Agents get visitor updates of their licence, never another's."""
        a = yield self.operator(licence=100)
        x = yield self.operator(licence=200)
        sa, ca = yield self.connectOperator(a)
        sx, cx = yield self.connectOperator(x)
        v, _ = yield self.connectVisitor("visitor-0100", licence=100)
        update = yield ca.next(isType("visitor.update"))
        self.assertEqual(update["visitor"]["url"], "https://shop.example/")
        self.assertEqual([m for m in cx.messages if m.get("type", "").startswith("visitor")], [])
        self.assertEqual([v["id"] for v in (yield sa.visitors())], ["visitor-0100"])
        self.assertEqual((yield sx.visitors()), [])
        self.assertTrue((yield self.core.isLicenceOnline(100)))
        self.assertTrue((yield self.core.isLicenceOnline(200)))
        self.assertFalse((yield self.core.isLicenceOnline(300)))
        self.assertEqual([o["nick"] for o in (yield sx.operators())], [x.nick])

    @defer.inlineCallbacks
    def test_visitorsExpireAndReturn(self) -> Any:
        """
        An idle visitor leaves the list after VISITOR_IDLE_TIMEOUT; when they
        come back later they are recognised as returning, with two visits.
        """
        a = yield self.operator()
        sa, ca = yield self.connectOperator(a)
        v, _ = yield self.connectVisitor("visitor-0007")
        first = yield ca.next(isType("visitor.update"))
        self.assertFalse(first["visitor"]["returning"])
        v.disconnect()
        self.clock.advance(599)
        self.assertEqual(len((yield sa.visitors())), 1)
        self.clock.advance(61)
        yield ca.next(isType("visitor.gone", visitorId="visitor-0007"))
        self.assertEqual((yield sa.visitors()), [])
        self.clock.advance(3600)
        back, _ = yield self.connectVisitor("visitor-0007")
        again = yield ca.next(
            lambda m: m.get("type") == "visitor.update" and m["visitor"]["visits"] == 2
        )
        self.assertTrue(again["visitor"]["returning"])
        self.assertIsNotNone(again["visitor"]["previousVisit"])


class IsolationTests(CoreMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_sameChatNumberOtherLicence(self) -> Any:
        """
        Chat numbers repeat across licences (each has its own database); an
        operator of one licence acting on "chat 1" touches only their own.
        """
        a = yield self.operator(licence=100)
        x = yield self.operator(licence=200)
        sa, ca = yield self.connectOperator(a)
        sx, cx = yield self.connectOperator(x)
        v, vchan = yield self.connectVisitor("visitor-0100", licence=100)
        chatId = yield self.activeChat(v, vchan, sa, ca, "secret of 100")
        yield self.assertFailure(sx.send(chatId, "hi"), CoreError)
        yield self.assertFailure(sx.accept(chatId), CoreError)
        yield self.assertFailure(sx.close(chatId), CoreError)
        texts = [m["event"].get("message") for m in cx.messages if m.get("type") == "chat.event"]
        self.assertNotIn("secret of 100", texts)


class SettingsTests(unittest.TestCase):
    def test_fromConfig(self) -> None:
        """CoreSettings reads its limits from lc_serv.cfg keys."""
        from livechat.config import buildConfig

        config = buildConfig({}, {"CHAT_ACCEPT_TIMEOUT": "12", "MAX_MESSAGE_LENGTH": "99"}, None)
        settings = CoreSettings.fromConfig(config)
        self.assertEqual((settings.acceptTimeout, settings.maxMessageLength), (12, 99))
