"""
The REST API routes the control panel runs a licence with (livechat/api/v1admin.py),
on a real node over real HTTP, on sqlite and on MariaDB: the licence default
of parallel chats, password reset, seats on enabling, office hours and the
switch per licence and group, the widget's look, the allowed origins, the
embed snippet, API keys, the reports; bad values are 400 with the reason and
another licence's ids are 404.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer

from livechat.auth import LoginRefused, login
from livechat.licencesettings import MAX_CSS, MAX_LIST
from livechat.storage.database import Txn
from tests.support.db import DialectMixin, bothDialects
from tests.test_api import SERVER_KEY, ApiNodeMixin

DAY = 86_400_000


def insertChat_txn(
    txn: Txn,
    created: int,
    *,
    operator: int | None = None,
    accepted: int | None = None,
    closed: int | None = None,
    replies: tuple[tuple[int, str], ...] = (),
    kind: str = "visitor",
) -> int:
    """A chat row as the core leaves it, at chosen times (tests of the reports' SQL)."""
    status = "closed" if closed is not None else ("active" if accepted is not None else "queued")
    chatId = txn.insert(
        "INSERT INTO {chats} (kind, status, visitor_id, operator, created_at, accepted_at, "
        "closed_at, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (kind, status, "v-report", operator, created, accepted, closed, len(replies) + 1),
    )
    rows = [(created, "v:v-report", "CONSUMER")] + [(t, o, "AGENT") for t, o in replies]
    for seq, (at, originator, role) in enumerate(rows, 1):
        name = "Visitor" if role == "CONSUMER" else "Agent"
        event = {"type": "ContentEvent", "message": f"Message {seq} from {name.lower()}"}
        body = json.dumps({"event": event, "name": name})
        txn.execute(
            "INSERT INTO {chat_events} (chat_id, seq, created_at, type, originator, role, body) "
            "VALUES (?, ?, ?, 'ContentEvent', ?, ?, ?)",
            (chatId, seq, at, originator, role, body),
        )
    return chatId


class PanelApiMixin(ApiNodeMixin):
    extraConfig = ""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        extra = (
            f"SERVER_API_KEY {SERVER_KEY}\nDEMO_LICENCE 0\nWEBHOOK_ALLOW_PRIVATE 1\n"
            "API_RATE 1000\nAPI_BURST 1000\nAPI_MAX_KEYS 3\nREPORT_MAX_DAYS 60\n"
            "PUBLIC_URL https://chat.example.com/base/\n"
        )
        yield self.startNode(self.nodeConfig(extra, database=self.databaseURL()))
        self.store = self.node.parts.store

    def assertError(self, answer: tuple[int, Any], code: int, error: str, text: str = "") -> None:
        self.assertEqual((answer[0], answer[1]["error"]), (code, error), answer)
        self.assertIn(text, answer[1]["message"])

    @defer.inlineCallbacks
    def test_licenceDefaultMaxChats(self) -> Any:
        """PATCH /licence sets the default of parallel chats, 0..1000 or null; nothing else."""
        key = yield self.licenceWithKey(510001)
        code, body = yield self.call("PATCH", "/licence", key, {"maxChats": 7, "name": "Shop"})
        self.assertEqual((code, body["maxChats"], body["name"]), (200, 7, "Shop"))
        licence = yield self.store.getLicence(510001)
        self.assertEqual(licence.max_chats_default, 7)
        for bad in (-1, 1001, "3", True):
            answer = yield self.call("PATCH", "/licence", key, {"maxChats": bad})
            self.assertError(answer, 400, "bad_request", "maxChats")
        answer = yield self.call("PATCH", "/licence", key, {"seatsCC": 100})
        self.assertError(answer, 400, "bad_request", "seatsCC")
        code, body = yield self.call("PATCH", "/licence", key, {"maxChats": None})
        self.assertEqual((code, body["maxChats"]), (200, None))
        code, body = yield self.call("PATCH", "/licence", key, {"maxChats": 1000})
        self.assertEqual((code, body["maxChats"]), (200, 1000))

    @defer.inlineCallbacks
    def test_passwordReset(self) -> Any:
        """
        A reset password works and the old one no longer does; a generated
        one is answered once; a short one is 400; another licence's
        operator is 404.
        """
        key = yield self.licenceWithKey(510002)
        other = yield self.licenceWithKey(510003)
        code, made = yield self.call(
            "POST",
            "/operators",
            key,
            {"nick": "bob", "email": "b@x.example", "password": "first-pw1"},
        )
        self.assertEqual(code, 201, made)
        opId = made["operator"]["id"]
        portal = self.node.parts.portal
        code, body = yield self.call(
            "POST", f"/operators/{opId}/password", key, {"password": "second-pw2"}
        )
        self.assertEqual(code, 200, body)
        self.assertNotIn("password", body)
        yield login(portal, 510002, "bob", "second-pw2")
        yield self.assertFailure(login(portal, 510002, "bob", "first-pw1"), LoginRefused)
        code, body = yield self.call("POST", f"/operators/{opId}/password", key, {})
        self.assertEqual(code, 200)
        self.assertGreaterEqual(len(body["password"]), 12)
        yield login(portal, 510002, "bob", body["password"])
        answer = yield self.call("POST", f"/operators/{opId}/password", key, {"password": "short"})
        self.assertError(answer, 400, "bad_request", "8 to 200")
        answer = yield self.call("POST", f"/operators/{opId}/password", other, {})
        self.assertError(answer, 404, "not_found")

    @defer.inlineCallbacks
    def test_disableEnableSeats(self) -> Any:
        """
        With two contact-centre seats (the administrator holds one) a third
        operator is refused; disabling one frees its seat, and enabling it
        again while the seat is taken is refused with over_seats.
        """
        code, _ = yield self.call(
            "POST",
            "/licences",
            SERVER_KEY,
            {"number": 510004, "seatsCC": 2, "admin": {"nick": "admin", "email": "a@x.example"}},
        )
        self.assertEqual(code, 201)
        from livechat.apikeys import createKey

        key, _ = yield createKey(self.store, 510004, "t", {"api"})
        code, bob = yield self.call("POST", "/operators", key, {"nick": "bob", "email": "b@x.ex"})
        self.assertEqual(code, 201, bob)
        answer = yield self.call("POST", "/operators", key, {"nick": "cy", "email": "c@x.ex"})
        self.assertError(answer, 409, "over_seats")
        bobId = bob["operator"]["id"]
        code, body = yield self.call("PATCH", f"/operators/{bobId}", key, {"disabled": True})
        self.assertEqual((code, body["disabled"]), (200, True))
        code, cy = yield self.call("POST", "/operators", key, {"nick": "cy", "email": "c@x.ex"})
        self.assertEqual(code, 201, cy)
        answer = yield self.call("PATCH", f"/operators/{bobId}", key, {"disabled": False})
        self.assertError(answer, 409, "over_seats")
        code, body = yield self.call(
            "PATCH", f"/operators/{cy['operator']['id']}", key, {"disabled": True}
        )
        code, body = yield self.call("PATCH", f"/operators/{bobId}", key, {"disabled": False})
        self.assertEqual((code, body["disabled"]), (200, False))

    @defer.inlineCallbacks
    def test_officeHoursAndSwitch(self) -> Any:
        """
        The licence's hours and switch, then a group's own: the group
        inherits until it has its own; the status says open or closed and
        why; bad hours are 400 and change nothing; other licences' groups 404.
        """
        key = yield self.licenceWithKey(510005)
        other = yield self.licenceWithKey(510006)
        code, office = yield self.call("GET", "/office", key)
        self.assertEqual(code, 200)
        self.assertEqual(
            (office["hours"], office["switch"], office["status"]["open"]), (None, "auto", True)
        )
        always = {
            "timezone": "UTC",
            "week": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        }
        code, office = yield self.call("PATCH", "/office", key, {"hours": always})
        self.assertEqual(code, 200, office)
        self.assertEqual(office["hours"]["week"]["mon"], ["00:00-24:00"])
        self.assertTrue(office["status"]["open"])
        never = {"timezone": "Europe/Warsaw", "week": {}}
        code, office = yield self.call("PATCH", "/office", key, {"hours": never})
        self.assertEqual(office["status"], {"open": False, "reason": "hours", "nextChange": None})
        for bad, text in (
            ({"hours": {"timezone": "Mars/Olympus"}}, "unknown time zone"),
            ({"hours": {"week": {"mon": ["17:00-09:00"]}}}, "mon"),
            ({"hours": "9-5"}, "hours is an object"),
            ({"switch": "maybe"}, "switch is one of"),
            ({"lunch": True}, "unknown field"),
        ):
            answer = yield self.call("PATCH", "/office", key, bad)
            self.assertError(answer, 400, "bad_request", text)
        code, office = yield self.call("GET", "/office", key)
        self.assertEqual(office["hours"]["timezone"], "Europe/Warsaw")
        code, office = yield self.call("PATCH", "/office", key, {"hours": None, "switch": "closed"})
        self.assertEqual((office["hours"], office["switch"]), (None, "closed"))
        self.assertEqual(office["status"]["reason"], "switch")

        code, group = yield self.call("POST", "/groups", key, {"name": "Sales"})
        gid = group["id"]
        code, office = yield self.call("GET", f"/groups/{gid}/office", key)
        self.assertEqual((office["group"], office["hours"], office["switch"]), (gid, None, None))
        self.assertEqual(office["status"]["reason"], "switch")  # the licence's switch
        code, office = yield self.call("PATCH", f"/groups/{gid}/office", key, {"switch": "open"})
        self.assertEqual((office["switch"], office["status"]["open"]), ("open", True))
        code, office = yield self.call("GET", "/office", key)
        self.assertFalse(office["status"]["open"])
        code, office = yield self.call("PATCH", f"/groups/{gid}/office", key, {"switch": None})
        self.assertEqual((office["switch"], office["status"]["open"]), (None, False))
        for method, body in (("GET", None), ("PATCH", {"switch": "open"})):
            answer = yield self.call(method, f"/groups/{gid}/office", other, body)
            self.assertError(answer, 404, "not_found")
            answer = yield self.call(method, "/groups/999999/office", key, body)
            self.assertError(answer, 404, "not_found")

    @defer.inlineCallbacks
    def test_widgetLook(self) -> Any:
        """
        The look's defaults, a change of some fields, texts per language;
        a request with one bad value stores none of its values; the CSS
        limit is MAX_CSS characters, exactly.
        """
        key = yield self.licenceWithKey(510007)
        code, look = yield self.call("GET", "/widget", key)
        self.assertEqual(code, 200)
        self.assertEqual(
            (look["color"], look["position"], look["prechat"], look["texts"]),
            ("#1f6feb", "right", True, {"en": {}, "pl": {}}),
        )
        code, look = yield self.call(
            "PATCH",
            "/widget",
            key,
            {"color": "#0A7D32", "prechat": False, "texts": {"pl": {"title": "Czat"}}},
        )
        self.assertEqual(code, 200, look)
        self.assertEqual(
            (look["color"], look["prechat"], look["texts"]),
            ("#0a7d32", False, {"en": {}, "pl": {"title": "Czat"}}),
        )
        for bad, text in (
            ({"color": "#123456", "textColor": "white"}, "not a colour"),
            ({"position": "top"}, "expected one of"),
            ({"texts": {"de": {"title": "x"}}}, "texts is an object"),
            ({"texts": {"en": {"bogus": "x"}}}, "unknown text"),
            ({"css": "a{}</style>"}, "</"),
            ({"css": "x" * (MAX_CSS + 1)}, str(MAX_CSS)),
            ({"prechat": "yes"}, "prechat"),
        ):
            answer = yield self.call("PATCH", "/widget", key, bad)
            self.assertError(answer, 400, "bad_request", text)
        code, look = yield self.call("PATCH", "/widget", key, {"css": "x" * MAX_CSS})
        self.assertEqual(code, 200)
        self.assertEqual((look["color"], len(look["css"])), ("#0a7d32", MAX_CSS))
        code, look = yield self.call("PATCH", "/widget", key, {"texts": {"pl": {}}, "css": ""})
        self.assertEqual((look["texts"]["pl"], look["css"]), ({}, ""))

    @defer.inlineCallbacks
    def test_originsAndEmbed(self) -> Any:
        """
        Origins are normalised and checked, at most MAX_LIST; the snippet
        names PUBLIC_URL, the licence and a group of its own only.
        """
        key = yield self.licenceWithKey(510008)
        other = yield self.licenceWithKey(510009)
        code, body = yield self.call(
            "PUT", "/origins", key, {"origins": ["https://WWW.Example.com:443", "self"]}
        )
        self.assertEqual((code, body["origins"]), (200, ["https://www.example.com", "self"]))
        answer = yield self.call("PUT", "/origins", key, {"origins": ["ftp://x.example"]})
        self.assertError(answer, 400, "bad_request", "http:// or https://")
        many = [f"https://s{i}.example.com" for i in range(MAX_LIST + 1)]
        answer = yield self.call("PUT", "/origins", key, {"origins": many})
        self.assertError(answer, 400, "bad_request", f"at most {MAX_LIST}")
        code, body = yield self.call("PUT", "/origins", key, {"origins": many[:MAX_LIST]})
        self.assertEqual((code, len(body["origins"])), (200, MAX_LIST))
        code, body = yield self.call("GET", "/origins", other)
        self.assertEqual(body["origins"], [])
        code, body = yield self.call("PUT", "/origins", key, {"origins": []})
        self.assertEqual(body["origins"], [])

        code, embed = yield self.call("GET", "/embed", key)
        self.assertEqual(code, 200)
        self.assertEqual(
            embed["snippet"],
            '<script src="https://chat.example.com/base/livechat.js" data-licence="510008" '
            "async></script>",
        )
        code, group = yield self.call("POST", "/groups", key, {"name": "Support"})
        code, embed = yield self.call("GET", f"/embed?group={group['id']}&lang=pl", key)
        self.assertIn(f'data-dispatch-to="{group["id"]}" data-lang="pl"', embed["snippet"])
        answer = yield self.call("GET", f"/embed?group={group['id']}", other)
        self.assertError(answer, 404, "not_found")
        answer = yield self.call("GET", "/embed?lang=de", key)
        self.assertError(answer, 400, "bad_request", "lang")

    @defer.inlineCallbacks
    def test_apiKeys(self) -> Any:
        """
        A new key works at once and is listed without its secret; API_MAX_KEYS
        (3 here) active keys at most; a revoked key stops at once and frees
        its place; another licence's key id is 404.
        """
        key = yield self.licenceWithKey(510010)
        other = yield self.licenceWithKey(510011)
        code, made = yield self.call("POST", "/api-keys", key, {"name": "CRM"})
        self.assertEqual(code, 201, made)
        self.assertEqual((made["name"], made["scopes"], made["revoked"]), ("CRM", ["api"], False))
        self.assertTrue(made["key"].startswith(f"lc_{made['id']}_"))
        code, mine = yield self.call("GET", "/licence", made["key"])
        self.assertEqual((code, mine["number"]), (200, 510010))
        code, listed = yield self.call("GET", "/api-keys", key)
        self.assertEqual([k["name"] for k in listed["items"]], ["test", "CRM"])
        # The secret is what follows "lc_<id>_" (it may hold "_" itself).
        secret = made["key"][len(f"lc_{made['id']}_") :]
        self.assertEqual(len(secret), 43)
        self.assertNotIn(secret, json.dumps(listed))
        code, third = yield self.call(
            "POST", "/api-keys", key, {"name": "Bot", "scopes": ["connector"]}
        )
        self.assertEqual((code, third["scopes"]), (201, ["connector"]))
        answer = yield self.call("POST", "/api-keys", key, {"name": "Fourth"})
        self.assertError(answer, 409, "too_many_keys", "API_MAX_KEYS")
        for bad, text in (
            ({"name": ""}, "name"),
            ({"name": "x", "scopes": ["root"]}, "scopes"),
            ({"name": "x", "scopes": []}, "scopes"),
        ):
            answer = yield self.call("POST", "/api-keys", key, bad)
            self.assertError(answer, 400, "bad_request", text)
        answer = yield self.call("DELETE", f"/api-keys/{made['id']}", other)
        self.assertError(answer, 404, "not_found")
        answer = yield self.call("DELETE", "/api-keys/nothex", key)
        self.assertError(answer, 404, "not_found")
        code, _ = yield self.call("DELETE", f"/api-keys/{made['id']}", key)
        self.assertEqual(code, 204)
        answer = yield self.call("GET", "/licence", made["key"])
        self.assertError(answer, 401, "unauthorized")
        code, _ = yield self.call("POST", "/api-keys", key, {"name": "Fourth"})
        self.assertEqual(code, 201)

    @defer.inlineCallbacks
    def test_reports(self) -> Any:
        """
        Chats made today show in every report of today, in the operator's
        row; another licence sees none of them; a range over REPORT_MAX_DAYS
        (60 here), a reversed range, a bad date or time zone are 400.
        """
        key = yield self.licenceWithKey(510012)
        other = yield self.licenceWithKey(510013)
        code, bob = yield self.call("POST", "/operators", key, {"nick": "bob", "email": "b@x.ex"})
        bobId = bob["operator"]["id"]
        now = int(self.node.parts.reactor.seconds() * 1000)
        run = self.store.db.runLicence
        yield run(
            510012,
            "c",
            insertChat_txn,
            now - 60_000,
            operator=bobId,
            accepted=now - 50_000,
            closed=now - 1000,
            replies=((now - 45_000, f"op:{bobId}"), (now - 30_000, f"op:{bobId}")),
        )
        yield run(510012, "c", insertChat_txn, now - 20_000, closed=now - 10_000)
        yield run(510012, "c", insertChat_txn, now - 20_000, kind="team")
        code, chats = yield self.call("GET", "/reports/chats", key)
        self.assertEqual(code, 200, chats)
        self.assertEqual(len(chats["days"]), 30)
        self.assertEqual(chats["total"], {"chats": 2, "missed": 1, "accepted": 1})
        self.assertEqual(sum(d["chats"] for d in chats["days"][-2:]), 2)
        code, first = yield self.call("GET", "/reports/first-response", key)
        self.assertEqual((first["answered"], first["averageMS"]), (1, 15_000))
        self.assertEqual(first["classes"][0], {"belowMS": 30_000, "chats": 1})
        code, missed = yield self.call("GET", "/reports/missed", key)
        self.assertEqual((missed["missed"], len(missed["chats"])), (1, 1))
        self.assertIsNone(missed["chats"][0]["acceptedAt"])
        code, ops = yield self.call("GET", "/reports/operators", key)
        row = next(i for i in ops["items"] if i["operatorId"] == bobId)
        self.assertEqual(
            (row["nick"], row["chats"], row["messages"], row["averageMS"]), ("bob", 1, 2, 49_000)
        )
        for path in ("/reports/chats", "/reports/missed", "/reports/operators"):
            code, body = yield self.call("GET", path, other)
            self.assertNotIn('"chats": 2', json.dumps(body))
        code, body = yield self.call("GET", "/reports/chats", other)
        self.assertEqual(body["total"]["chats"], 0)
        code, body = yield self.call("GET", "/reports/chats?from=2026-01-01&to=2026-03-01", key)
        self.assertEqual((code, len(body["days"])), (200, 60))
        for query, text in (
            ("from=2026-01-01&to=2026-03-02", "at most 60 days"),
            ("from=2026-03-02&to=2026-03-01", "after"),
            ("from=2026-13-01", "YYYY-MM-DD"),
            ("tz=Mars/Olympus", "time zone"),
            ("from=0001-01-01&to=0001-01-02", "1971"),
        ):
            answer = yield self.call("GET", "/reports/chats?" + query, key)
            self.assertError(answer, 400, "bad_request", text)


globals().update(bothDialects(PanelApiMixin, "PanelApiTests"))


class ReportSqlMixin(DialectMixin):
    """The reports' SQL and day folding at chosen times, on both dialects."""

    @defer.inlineCallbacks
    def test_daysOfAZone(self) -> Any:
        """
        Chats near midnight and across the change to summer time land in
        the local days of Europe/Warsaw (not UTC's); the first-response
        classes and the operator load add up.
        """
        import datetime
        import zoneinfo

        from livechat.model import Licence
        from livechat.storage import panelreports as P

        store = yield self.openStore()
        yield store.createLicence(Licence(number=520001))
        zone = zoneinfo.ZoneInfo("Europe/Warsaw")

        def at(text: str) -> int:
            return int(
                datetime.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp() * 1000
            )

        run = store.db.runLicence
        # 23:30 local on 29 March (summer time began that night at 02:00) is 21:30 UTC.
        yield run(520001, "c", insertChat_txn, at("2026-03-29 23:30"))
        yield run(
            520001,
            "c",
            insertChat_txn,
            at("2026-03-30 00:10"),
            operator=7,
            accepted=at("2026-03-30 00:11"),
            closed=at("2026-03-30 00:20"),
            replies=((at("2026-03-30 00:12"), "op:7"),),
        )
        yield run(
            520001,
            "c",
            insertChat_txn,
            at("2026-03-28 12:00"),
            operator=7,
            accepted=at("2026-03-28 12:00"),
            replies=((at("2026-03-28 12:00") + 400_000, "op:7"),),
        )
        first, last = datetime.date(2026, 3, 28), datetime.date(2026, 3, 30)
        since, until = P.dayRange(zone, first, last)
        self.assertEqual(until - since, 3 * DAY - 3_600_000)  # one hour lost to DST
        rows = yield run(520001, "r", P.chatBuckets_txn, since, until)
        days = P.foldDays(rows, zone, first, last, 3)
        self.assertEqual(
            [(d.day, v) for d, v in days], [(28, [1, 0, 1]), (29, [1, 0, 0]), (30, [1, 0, 1])]
        )
        rows = yield run(520001, "r", P.firstResponseBuckets_txn, since, until)
        days = P.foldDays(rows, zone, first, last, 2 + len(P.RESPONSE_CLASSES) + 1)
        self.assertEqual(days[0][1], [1, 400_000, 0, 0, 0, 0, 1, 0])
        self.assertEqual(days[2][1], [1, 120_000, 0, 0, 0, 1, 0, 0])
        load = yield run(520001, "r", P.operatorLoad_txn, since, until)
        self.assertEqual(load, {7: {"chats": 2, "closed": 1, "talkMS": 540_000, "messages": 2}})
        missed = yield run(520001, "r", P.missedChats_txn, since, until, 10)
        self.assertEqual(missed, [])
        rows = yield run(520001, "r", P.chatBuckets_txn, since, at("2026-03-29 23:30"))
        self.assertEqual(sum(r[1] for r in rows), 1)  # until is exclusive


globals().update(bothDialects(ReportSqlMixin, "ReportSqlTests"))
