"""
The REST API and the connector API on a real node (sqlite, port 0), over
real HTTP: the OpenAPI document matches the routes, keys of one licence see
nothing of another, the connector drives a whole conversation with an agent
and its app is notified, rate limits answer 429.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

from twisted.internet import defer, task
from twisted.trial import unittest

from livechat.api import RateLimiter
from livechat.api.v1 import ROUTES, openapi
from livechat.apikeys import createKey
from livechat.model import ChatKind, ChatStatus, Licence
from livechat.notify import payloads
from tests.support.core import RecordingChannel, isEvent, isType
from tests.support.http import request
from tests.support.process import ServerProcess
from tests.support.receiver import Receiver
from tests.test_service import NodeMixin

SERVER_KEY = "server-key-" + "x" * 32


class ApiNodeMixin(NodeMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        extra = (
            f"SERVER_API_KEY {SERVER_KEY}\nDEMO_LICENCE 0\nWEBHOOK_ALLOW_PRIVATE 1\n"
            "API_RATE 1000\nAPI_BURST 1000\n"
        )
        yield self.startNode(self.nodeConfig(extra))
        self.store = self.node.parts.store

    @defer.inlineCallbacks
    def call(
        self, method: str, path: str, key: str | None, body: Any = None, **headers: str
    ) -> Any:
        h = dict(headers)
        if key:
            h["Authorization"] = f"Bearer {key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        code, _, raw = yield request(method, self.url("api/v1" + path), data, h)
        try:
            parsed = json.loads(raw) if raw.strip() else None
        except ValueError:
            parsed = raw
        return code, parsed

    @defer.inlineCallbacks
    def licenceWithKey(self, number: int, scopes: set[str] | None = None) -> Any:
        code, made = yield self.call(
            "POST",
            "/licences",
            SERVER_KEY,
            {"number": number, "admin": {"nick": "admin", "email": f"admin@{number}.example"}},
        )
        self.assertEqual(code, 201, made)
        key, _ = yield createKey(self.store, number, "test", scopes or {"api", "connector"})
        return key


class ApiTests(ApiNodeMixin, unittest.TestCase):
    def test_documentCoversRoutes(self) -> None:
        """Every route is in the OpenAPI document with its method, and nothing else is."""
        doc = openapi()
        documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
        self.assertEqual(documented, {(r.method, r.path) for r in ROUTES})
        for r in ROUTES:
            self.assertIn("responses", r.operation)

    @defer.inlineCallbacks
    def test_servedDocumentAndErrors(self) -> Any:
        """openapi.json is served without a key; other routes want one, with clear JSON errors."""
        code, doc = yield self.call("GET", "/openapi.json", None)
        self.assertEqual((code, doc["openapi"]), (200, "3.1.0"))
        code, body = yield self.call("GET", "/licence", None)
        self.assertEqual((code, body["error"]), (401, "unauthorized"))
        code, body = yield self.call("GET", "/licence", "lc_000000000000_nope")
        self.assertEqual((code, body["error"]), (401, "unauthorized"))
        key = yield self.licenceWithKey(111111)
        code, body = yield self.call("POST", "/licences", key, {})
        self.assertEqual((code, body["error"]), (403, "forbidden"))
        code, body = yield self.call("GET", "/nothing", key)
        self.assertEqual(code, 404)
        code, body = yield self.call("DELETE", "/licence", key)
        self.assertEqual(code, 405)
        code, body = yield self.call("POST", "/operators", key, {"nick": "x"})
        self.assertEqual((code, body["error"]), (400, "bad_request"))
        code, _, raw = yield request(
            "POST", self.url("api/v1/groups"), b"{not json", {"Authorization": f"Bearer {key}"}
        )
        self.assertEqual(code, 400)

    @defer.inlineCallbacks
    def test_crossLicence(self) -> Any:
        """
        Licence A makes one of everything; licence B's key gets 404 for every
        route with an id of A's, and none of A's rows in its lists.
        """
        keyA = yield self.licenceWithKey(222222)
        keyB = yield self.licenceWithKey(333333)
        code, op = yield self.call(
            "POST", "/operators", keyA, {"nick": "bob", "email": "b@a.example"}
        )
        self.assertEqual(code, 201, op)
        opId = op["operator"]["id"]
        code, group = yield self.call(
            "POST", "/groups", keyA, {"name": "Sales", "operators": [opId]}
        )
        self.assertEqual(code, 201, group)
        code, app = yield self.call(
            "POST", "/apps", keyA, {"name": "A app", "endpoint": "https://a.example/n"}
        )
        self.assertEqual(code, 201, app)
        code, hook = yield self.call(
            "POST", "/webhooks", keyA, {"event": "CHAT_STARTED", "url": "https://a.example/h"}
        )
        self.assertEqual(code, 201, hook)
        chat, _, _ = yield self.store.forLicence(222222).createChat(
            kind=ChatKind.VISITOR,
            status=ChatStatus.REQUESTED,
            visitor_id="visitor-aaaa",
        )
        ids = {
            "operatorId": opId,
            "groupId": group["id"],
            "appId": app["id"],
            "webhookId": hook["id"],
            "chatId": chat.id,
            "deliveryId": 1,
            "apiKey": keyA.split("_")[1],
        }
        from livechat.storage import hooks as H

        yield self.store.db.runLicence(
            222222,
            "add",
            H.addDeliveries_txn,
            [
                H.DeliveryDraft(
                    endpoint="hook:1",
                    event_key="log:1",
                    event="X",
                    chat_id=None,
                    order_key="k",
                    order_no=1,
                    payload={},
                )
            ],
            0,
        )
        checked = 0
        for r in ROUTES:
            if not r.params or r.scope == "server":
                continue
            path = r.path
            for name in r.params:
                path = path.replace("{" + name + "}", str(ids[name]))
            body = {} if r.method in ("POST", "PUT", "PATCH") else None
            if r.path.endswith("/connector"):
                body = {"kind": "req", "id": "1", "type": "cm.ConsumerRequestConversation"}
            code, answer = yield self.call(
                r.method, path, keyB, body, **{"X-Livechat-Consumer": "c1"}
            )
            self.assertEqual(code, 404, f"{r.method} {path}: {answer}")
            if r.method == "GET":
                code, answer = yield self.call(r.method, path, keyA)
                self.assertEqual(code, 200, f"{r.method} {path} of its own licence: {answer}")
            checked += 1
        self.assertGreaterEqual(checked, 15)
        for path in (
            "/operators",
            "/groups",
            "/apps",
            "/webhooks",
            "/chats",
            "/deliveries",
            "/events",
        ):
            code, page = yield self.call("GET", path, keyB)
            self.assertEqual(code, 200)
            text = json.dumps(page)
            self.assertNotIn("a.example", text)
            self.assertNotIn("visitor-aaaa", text)
        code, mine = yield self.call("GET", "/licence", keyB)
        self.assertEqual(mine["number"], 333333)

    @defer.inlineCallbacks
    def test_groupRenameAndDelete(self) -> Any:
        """
        PATCH renames a group (409 onto another's name, 400 for an empty
        one); DELETE removes it with its office hours (204, then 404), but
        answers 409 while a chat waits in its queue.
        """
        key = yield self.licenceWithKey(444444)
        code, sales = yield self.call("POST", "/groups", key, {"name": "Sales"})
        self.assertEqual(code, 201, sales)
        code, _ = yield self.call("POST", "/groups", key, {"name": "Billing"})
        self.assertEqual(code, 201)
        path = f"/groups/{sales['id']}"
        code, office = yield self.call("PATCH", path + "/office", key, {"switch": "closed"})
        self.assertEqual((code, office["switch"]), (200, "closed"), office)
        code, changed = yield self.call("PATCH", path, key, {"name": "Shop", "description": "d"})
        self.assertEqual(code, 200, changed)
        self.assertEqual((changed["name"], changed["description"]), ("Shop", "d"))
        for body, status in (
            ({"name": "BILLING"}, 409),
            ({"name": "  "}, 400),
            ({"name": 5}, 400),
            ({"colour": "red"}, 400),
        ):
            code, answer = yield self.call("PATCH", path, key, body)
            self.assertEqual(code, status, (body, answer))
        code, listed = yield self.call("GET", "/groups", key)
        self.assertEqual([g["name"] for g in listed["items"]], ["Billing", "Shop"])

        chat, _, _ = yield self.store.forLicence(444444).createChat(
            kind=ChatKind.VISITOR,
            status=ChatStatus.QUEUED,
            visitor_id="visitor-q",
            group_id=sales["id"],
        )
        code, answer = yield self.call("DELETE", path, key)
        self.assertEqual((code, answer["error"]), (409, "conflict"), answer)
        yield self.store.forLicence(444444).appendEvents(
            chat.id, [], update={"status": ChatStatus.CLOSED}
        )
        code, answer = yield self.call("DELETE", path, key)
        self.assertEqual(code, 204, answer)
        for method, sub in (("GET", ""), ("GET", "/office"), ("DELETE", ""), ("PATCH", "")):
            code, _ = yield self.call(method, path + sub, key, {} if method == "PATCH" else None)
            self.assertEqual(code, 404, (method, sub))
        self.assertIsNone(
            (yield self.store.forLicence(444444).getSetting(f"office.switch.{sales['id']}"))
        )
        code, again = yield self.call("POST", "/groups", key, {"name": "Shop"})
        self.assertEqual(code, 201)
        self.assertNotEqual(again["id"], sales["id"])

    @defer.inlineCallbacks
    def test_eventsFiltered(self) -> Any:
        """
        GET /events takes event= and chat= (together too), pages with
        after= within the filter, and refuses a malformed filter with 400.
        """
        key = yield self.licenceWithKey(555555)
        ls = self.store.forLicence(555555)
        logged = []
        for name, chat in (
            ("CHAT_STARTED", 1),
            ("OPERATOR_STATUS", None),
            ("CHAT_STARTED", 2),
            ("CHAT_CLOSED", 1),
            ("CHAT_STARTED", 3),
        ):
            logged.append((yield ls.logEvent(name, {"n": len(logged)}, chat)))

        @defer.inlineCallbacks
        def ids(query: str) -> Any:
            code, page = yield self.call("GET", "/events?" + query, key)
            self.assertEqual(code, 200, (query, page))
            return [e["id"] for e in page["items"]]

        self.assertEqual((yield ids("limit=500")), logged)
        self.assertEqual((yield ids("event=CHAT_STARTED")), [logged[0], logged[2], logged[4]])
        self.assertEqual((yield ids("chat=1")), [logged[0], logged[3]])
        self.assertEqual((yield ids("chat=1&event=CHAT_CLOSED")), [logged[3]])
        self.assertEqual((yield ids("event=CHAT_STARTED&limit=1")), [logged[0]])
        self.assertEqual((yield ids(f"event=CHAT_STARTED&limit=1&after={logged[0]}")), [logged[2]])
        self.assertEqual((yield ids("event=NOTHING_LIKE_IT")), [])
        for bad in ("event=a%20b", "event=" + "A" * 65, "chat=0", "chat=x"):
            code, answer = yield self.call("GET", "/events?" + bad, key)
            self.assertEqual((code, answer["error"]), (400, "bad_request"), bad)

    @defer.inlineCallbacks
    def test_subscriptionSeats(self) -> Any:
        """A subscription is logged as NEW_OPERATOR_SUBSCRIPTION and its seats decide logins."""
        from livechat.auth import LoginRefused, login

        key = yield self.licenceWithKey(444444)
        code, op = yield self.call(
            "POST",
            "/operators",
            key,
            {"nick": "carl", "email": "c@x.example", "password": "password1"},
        )
        self.assertEqual(code, 201)
        now = int(self.node.parts.reactor.seconds() * 1000)
        code, sub = yield self.call(
            "POST",
            "/subscriptions",
            key,
            {
                "operatorsCC": 1,
                "operatorsCOM": 0,
                "startDate": now - 1000,
                "endDate": now + 86400000,
            },
        )
        self.assertEqual(code, 201, sub)
        code, events = yield self.call("GET", "/account-events", key)
        self.assertIn("NEW_OPERATOR_SUBSCRIPTION", [e["event"] for e in events["items"]])
        portal = self.node.parts.portal
        failure = yield self.assertFailure(login(portal, 444444, "carl", "password1"), LoginRefused)
        self.assertEqual(failure.code, "over_seats")


class ConnectorTests(ApiNodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_wholeConversation(self) -> Any:
        """
        An app's consumer opens a conversation, it is routed to an agent who
        accepts and answers; the consumer types, reads and closes; every
        answer carries the stored sequence, and the app's endpoint gets the
        agent's message as a connector notification, signed.
        """
        receiver = Receiver().start()
        self.addCleanup(receiver.stop)
        key = yield self.licenceWithKey(555555)
        code, app = yield self.call(
            "POST",
            "/apps",
            key,
            {
                "name": "WhatsApp bridge",
                "endpoint": receiver.url("/notifications/event"),
                "endpoints": {"AcceptStatusEvent": receiver.url("/notifications/read")},
                "headers": {"X-Token": "abc"},
            },
        )
        self.assertEqual(code, 201, app)
        appPath = f"/apps/{app['id']}/connector"
        licence = yield self.store.getLicence(555555)
        agentOp = yield self.store.getOperator(555555, "admin")
        channel = RecordingChannel("agent")
        agent = self.node.parts.core.connectOperator(licence, agentOp, channel, client="test")
        self.addCleanup(agent.disconnect)
        yield defer.ensureDeferred(agent.start())

        def req(kind: str, body: dict[str, Any], n: str = "1") -> Any:
            return self.call(
                "POST",
                appPath,
                key,
                {"kind": "req", "id": n, "type": kind, "body": body},
                **{"X-Livechat-Consumer": "+48123456789"},
            )

        code, opened = yield req(
            "cm.ConsumerRequestConversation", {"context": {"name": "Ola"}, "message": "Hi!"}
        )
        self.assertEqual((code, opened["code"]), (200, "OK"), opened)
        dialog = opened["body"]["conversationId"]
        chatId = int(dialog)
        offered = yield channel.next(isType("chat.offered", chatId=chatId))
        self.assertEqual(offered["firstMessage"], "Hi!")
        yield agent.accept(chatId)
        agentSeq = yield agent.send(chatId, "Hello Ola")
        code, typed = yield req(
            "ms.PublishEvent",
            {"dialogId": dialog, "event": {"type": "ChatStateEvent", "chatState": "COMPOSING"}},
            "2",
        )
        self.assertEqual((code, typed), (200, {"reqId": "2", "code": "OK", "body": {}}))
        yield channel.next(isEvent("ChatStateEvent", chatId, chatState="COMPOSING"))
        code, sent = yield req(
            "ms.PublishEvent",
            {
                "dialogId": dialog,
                "event": {
                    "type": "ContentEvent",
                    "contentType": "text/plain",
                    "message": "Where is my order?",
                },
            },
            "3",
        )
        self.assertEqual(code, 200, sent)
        self.assertEqual(sent["body"]["sequence"], agentSeq + 1)
        got = yield channel.next(isEvent("ContentEvent", chatId, message="Where is my order?"))
        self.assertEqual(got["sequence"], sent["body"]["sequence"])
        code, read = yield req(
            "ms.PublishEvent",
            {
                "dialogId": dialog,
                "event": {
                    "type": "AcceptStatusEvent",
                    "status": "READ",
                    "sequenceList": [agentSeq],
                },
            },
            "4",
        )
        self.assertEqual(code, 200, read)
        receipt = yield channel.next(isEvent("AcceptStatusEvent", chatId))
        self.assertEqual(receipt["event"]["sequenceList"], [agentSeq])
        code, bad = yield req(
            "ms.PublishEvent",
            {"dialogId": "999999", "event": {"type": "ContentEvent", "message": "x"}},
            "5",
        )
        self.assertEqual((code, bad["error"]), (404, "not_found"))
        code, closed = yield req(
            "cm.UpdateConversationField",
            {
                "conversationId": dialog,
                "conversationField": {
                    "field": "ConversationStateField",
                    "conversationState": "CLOSE",
                },
            },
            "6",
        )
        self.assertEqual(code, 200, closed)
        yield channel.next(isEvent("CloseEvent", chatId))

        worker = self.node.parts.webhooks

        def types() -> set[str]:
            return {
                json.loads(x.body)["body"]["changes"][0]["event"]["type"] for x in receiver.requests
            }

        for _ in range(100):
            if {"ContentEvent", "AcceptStatusEvent", "CloseEvent"} <= types():
                break
            yield worker.runPass()
            yield worker.whenIdle()
        notes = [json.loads(x.body) for x in receiver.requests]
        change = next(
            n["body"]["changes"][0]
            for n in notes
            if n["body"]["changes"][0]["event"].get("message") == "Hello Ola"
        )
        self.assertEqual(notes[0]["kind"], "notification")
        self.assertEqual(notes[0]["type"], "ms.MessagingEventNotification")
        self.assertEqual(change["sequence"], agentSeq)
        self.assertEqual((change["conversationId"], change["dialogId"]), (dialog, dialog))
        self.assertEqual(change["originatorMetadata"]["role"], "ASSIGNED_AGENT")
        self.assertTrue(all(x.headers["x-token"] == "abc" for x in receiver.requests))
        paths = {
            json.loads(x.body)["body"]["changes"][0]["event"]["type"]: x.path
            for x in receiver.requests
        }
        self.assertEqual(paths["ContentEvent"], "/notifications/event")
        self.assertEqual(paths["AcceptStatusEvent"], "/notifications/read")
        self.assertIn("CloseEvent", paths)
        api = self.node.getServiceNamed("http").factory.resource.children[b"api"].v1
        self.assertEqual(api.services["connector"].openSessions, 0)
        secret = (yield self.call("GET", "/webhook-secret", key))[1]["secret"]
        x = receiver.requests[0]
        self.assertTrue(
            payloads.verify(
                secret,
                x.headers["x-livechat-signature"],
                x.body,
                float(x.headers["x-livechat-timestamp"]),
            )
        )


class RateLimitedNodeTests(NodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_429(self) -> Any:
        """Past API_BURST a key gets 429 with Retry-After; another key is not affected."""
        yield self.startNode(self.nodeConfig("DEMO_LICENCE 0\nAPI_RATE 1\nAPI_BURST 2\n"))
        store = self.node.parts.store
        yield store.createLicence(Licence(number=123123))
        one, _ = yield createKey(store, 123123, "one", {"api"})
        two, _ = yield createKey(store, 123123, "two", {"api"})
        codes = []
        for _ in range(3):
            code, headers, _ = yield request(
                "GET", self.url("api/v1/licence"), None, {"Authorization": f"Bearer {one}"}
            )
            codes.append(code)
        self.assertEqual(codes, [200, 200, 429])
        self.assertTrue(headers.getRawHeaders(b"retry-after"))
        code, _, _ = yield request(
            "GET", self.url("api/v1/licence"), None, {"Authorization": f"Bearer {two}"}
        )
        self.assertEqual(code, 200)


class RateLimitTests(unittest.TestCase):
    def test_bucket(self) -> None:
        """A key gets its burst at once, then API_RATE per second; other keys are not affected."""
        clock = task.Clock()
        limiter = RateLimiter(clock, maxKeys=2)
        self.assertEqual([limiter.take("a", 2, 3) for _ in range(3)], [0, 0, 0])
        self.assertGreater(limiter.take("a", 2, 3), 0)
        self.assertEqual(limiter.take("b", 2, 3), 0)
        clock.advance(0.5)
        self.assertEqual(limiter.take("a", 2, 3), 0)
        self.assertGreater(limiter.take("a", 2, 3), 0)
        limiter.take("c", 2, 3)
        self.assertEqual(len(limiter._buckets), 2)


class SchemathesisTests(ApiNodeMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_noServerErrors(self) -> Any:
        """
        schemathesis, from the served OpenAPI document, sends generated
        requests to every operation with a licence key: no answer is a 5xx,
        and every status, content type and body is one the document declares.
        """
        st = shutil.which("st", path=os.path.dirname(sys.executable)) or shutil.which("st")
        if st is None:
            raise unittest.SkipTest("schemathesis is not installed (pip install -e .[test])")
        key = yield self.licenceWithKey(666666)
        url = self.url("api/v1/openapi.json")
        process = ServerProcess.spawn(
            self,
            [
                st,
                "run",
                url,
                "--url",
                self.url("api/v1").rstrip("/"),
                "-H",
                f"Authorization: Bearer {key}",
                "--checks",
                os.environ.get(
                    "LC_ST_CHECKS",
                    "not_a_server_error,status_code_conformance,"
                    "content_type_conformance,response_schema_conformance",
                ),
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--no-color",
                "--exclude-path",
                "/apps/{appId}/connector",
            ],
            env={"SCHEMATHESIS_HOOKS": ""},
        )
        code = yield process.ended()
        self.assertEqual(code, 0, process.output[-6000:])
