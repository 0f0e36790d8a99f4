"""
Browser sessions (livechat.websession): the secret's rules, login through
the portal and its throttle, the cookie's flags, idle and absolute expiry
on a task.Clock, CSRF, log out (everywhere), disabled operators, scopes,
the per-operator cap; the JSON resources over a real Site.  The storage
runs on sqlite and MariaDB.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.python import usage
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.test.requesthelper import DummyChannel

from livechat.auth import LoginThrottle, makePortal
from livechat.config import ConfigError, loadConfig
from livechat.model import AccountType, Licence, Operator
from livechat.websession import (
    SessionError,
    SessionManager,
    SessionService,
    SessionSettings,
    checkSessionSecret,
    cookieValue,
    loadSessionSecret,
    mountSessionResources,
    secretProblem,
)
from tests.support.browser import serveSite
from tests.support.db import DialectMixin, bothDialects
from tests.support.http import request as httpRequest
from tests.test_auth import cheapHasher

GOOD_SECRET = "k3Jq9vP2xR7mT4wZ8nB5cL1hF6dG0sYaEuI"
IDLE = 600.0
MAX_AGE = 3600.0


def config(**values: str) -> Any:
    return loadConfig(None, values)


class SecretTests(unittest.TestCase):
    def test_weakValuesRefused(self) -> None:
        """Short, well-known and repetitive secrets are refused, a random one is not."""
        self.assertIn("at least 32", secretProblem("s3cret") or "")
        self.assertIn("well-known", secretProblem("changeme" * 4) or "")
        self.assertIn("well-known", secretProblem("keyboard cat keyboard cat keyboard cat") or "")
        self.assertIn("too few", secretProblem("ab" * 20) or "")
        self.assertIsNone(secretProblem(GOOD_SECRET))

    def test_checkNamesTheKey(self) -> None:
        """A weak SESSION_SECRET stops the start with a message naming the key; empty is fine."""
        with self.assertRaises(ConfigError) as caught:
            checkSessionSecret(config(SESSION_SECRET="changeme"))
        self.assertIn("SESSION_SECRET", str(caught.exception))
        self.assertIn("--dev", str(caught.exception))
        checkSessionSecret(config(SESSION_SECRET=""))
        checkSessionSecret(config(SESSION_SECRET=GOOD_SECRET))
        checkSessionSecret(config(SESSION_SECRET="changeme", DEV_MODE="1"))

    def test_makeServiceRefuses(self) -> None:
        """makeService (used by the .tac files) refuses a weak secret before doing anything."""
        from twisted.internet import reactor

        from livechat.service import makeService

        with self.assertRaises(ConfigError):
            makeService(config(SESSION_SECRET="changeme"), reactor)

    def test_twistdOptions(self) -> None:
        """`twistd livechat` says why it will not start; --dev lets it."""
        from livechat.tap import Options

        options = Options()
        with self.assertRaises(usage.UsageError) as caught:
            options.parseOptions(["--set", "SESSION_SECRET=changeme"])
        self.assertIn("SESSION_SECRET is not safe", str(caught.exception))
        options = Options()
        options.parseOptions(["--set", "SESSION_SECRET=changeme", "--dev"])
        assert options.config is not None
        self.assertTrue(options.config["DEV_MODE"])


class FakeState:
    """server_state of a store, in memory (for the secret's tests)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def claimState(self, name: str, value: str) -> defer.Deferred[bool]:
        if name in self.values:
            return defer.succeed(False)
        self.values[name] = value
        return defer.succeed(True)

    def getState(self, name: str) -> defer.Deferred[str | None]:
        return defer.succeed(self.values.get(name))


class LoadSecretTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_emptyIsMadeOnceAndKept(self) -> Any:
        """With no SESSION_SECRET the first start makes one; later starts (any node) reuse it."""
        state = FakeState()
        first = yield defer.ensureDeferred(loadSessionSecret(state, config()))
        again = yield defer.ensureDeferred(loadSessionSecret(state, config()))
        self.assertEqual(first, again)
        self.assertEqual(len(first), 32)

    @defer.inlineCallbacks
    def test_configured(self) -> Any:
        state = FakeState()
        secret = yield defer.ensureDeferred(
            loadSessionSecret(state, config(SESSION_SECRET=GOOD_SECRET))
        )
        self.assertEqual(secret, GOOD_SECRET.encode())
        self.assertEqual(state.values, {})

    @defer.inlineCallbacks
    def test_devModeRandomPerProcess(self) -> Any:
        """DEV_MODE with a weak secret: a random one each time, and a loud warning."""
        from twisted.logger import Logger, LogLevel

        seen: list[dict[str, Any]] = []
        log = Logger(observer=seen.append)
        state = FakeState()
        weak = config(SESSION_SECRET="changeme", DEV_MODE="1")
        one = yield defer.ensureDeferred(loadSessionSecret(state, weak, log))
        two = yield defer.ensureDeferred(loadSessionSecret(state, weak, log))
        self.assertNotEqual(one, two)
        self.assertNotEqual(one, b"changeme")
        self.assertEqual(seen[0]["log_level"], LogLevel.warn)
        self.assertIn("DEV_MODE", seen[0]["log_format"])


def makeRequest(
    method: bytes = b"GET",
    headers: dict[str, str] | None = None,
    cookies: dict[bytes, bytes] | None = None,
    secure: bool = False,
    peer: str = "192.0.2.7",
) -> server.Request:
    channel = DummyChannel(IPv4Address("TCP", peer, 5000))
    if secure:
        channel.transport = DummyChannel.SSL(IPv4Address("TCP", peer, 5000))
    req = server.Request(channel)
    req.method = method
    req.requestHeaders.setRawHeaders(b"host", [b"chat.example.com"])
    for name, value in (headers or {}).items():
        req.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
    req.received_cookies = dict(cookies or {})
    return req


def cookieOf(req: server.Request, name: bytes = b"lcs") -> tuple[bytes, list[bytes]]:
    """The value and the attributes of the cookie C{name} a response sets."""
    for line in req.cookies:
        head, *attrs = [p.strip() for p in line.split(b";")]
        key, _, value = head.partition(b"=")
        if key == name:
            return value, attrs
    raise AssertionError(f"no cookie {name!r} in {req.cookies!r}")


class SessionTestsMixin(DialectMixin):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.store = yield self.openStore()
        self.hasher = cheapHasher()
        self.throttle = LoginThrottle(self.clock, maxPerAccount=3, maxPerAddress=100, window=60)
        self.portal = makePortal(self.store, self.hasher, self.throttle, self.clock)
        yield self.store.createLicence(Licence(number=100))
        self.anna = yield self.addOperator("anna", is_admin=True)
        self.bob = yield self.addOperator("bob")
        self.manager = self.makeManager()

    @defer.inlineCallbacks
    def addOperator(self, nick: str, licence: int = 100, **kw: Any) -> Any:
        passwordHash = yield self.hasher.hash(f"{nick}-password")
        op = yield self.store.createOperator(
            licence,
            Operator(
                id=0,
                licence=0,
                nick=nick,
                operator_id=f"{nick}@example.com",
                account_type=AccountType.CONTACT_CENTER,
                **kw,
            ),
            passwordHash,
        )
        return op

    def makeManager(self, **kw: Any) -> SessionManager:
        values: dict[str, Any] = dict(
            idleTimeout=IDLE, maxAge=MAX_AGE, touchEvery=60.0, trustedProxies=("10.0.0.0/8",)
        )
        values.update(kw)
        return SessionManager(
            self.store,
            self.clock,
            SessionSettings(**values),
            portal=self.portal,
            secret=GOOD_SECRET.encode(),
        )

    @defer.inlineCallbacks
    def login(self, nick: str = "anna", manager: SessionManager | None = None, **kw: Any) -> Any:
        manager = manager or self.manager
        headers = {"user-agent": "Test/1.0", **kw.pop("headers", {})}
        req = makeRequest(b"POST", headers=headers, **kw)
        session = yield defer.ensureDeferred(manager.login(req, 100, nick, f"{nick}-password"))
        token, attrs = cookieOf(req, manager.settings.cookieName.encode())
        return session, token, attrs

    def current(
        self, token: bytes, manager: SessionManager | None = None, name: bytes = b"lcs"
    ) -> defer.Deferred[Any]:
        manager = manager or self.manager
        return defer.ensureDeferred(manager.current(makeRequest(cookies={name: token})))

    # -- login and the cookie ----------------------------------------------------------

    @defer.inlineCallbacks
    def test_loginSetsAStrictCookie(self) -> Any:
        """
        The cookie is HttpOnly, SameSite=Strict, scoped to the path, without
        Secure over plain http; the database keeps only a hash of it.
        """
        session, token, attrs = yield self.login()
        self.assertEqual(len(token), 43)
        self.assertIn(b"HttpOnly", attrs)
        self.assertIn(b"SameSite=strict", attrs)
        self.assertIn(b"Path=/agent/", attrs)
        self.assertIn(b"Max-Age=3600", attrs)
        self.assertNotIn(b"Secure", attrs)
        self.assertEqual(session.operator.nick, "anna")
        self.assertEqual(session.userAgent, "Test/1.0")
        self.assertEqual(session.address, "192.0.2.7")
        self.assertNotEqual(session.idHash, token.decode())
        found = yield self.store.getWebSession(token.decode())
        self.assertIsNone(found)
        again = yield self.current(token)
        self.assertEqual((again.operator.id, again.csrf), (self.anna.id, session.csrf))

    @defer.inlineCallbacks
    def test_secureOverHttps(self) -> Any:
        """Secure over TLS, and behind a trusted proxy that says https; not from anyone else."""
        _, _, attrs = yield self.login(secure=True)
        self.assertIn(b"Secure", attrs)
        proxied = {"x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.4"}
        _, _, attrs = yield self.login(peer="10.1.2.3", headers=proxied)
        self.assertIn(b"Secure", attrs)
        _, _, attrs = yield self.login(peer="192.0.2.50", headers=proxied)
        self.assertNotIn(b"Secure", attrs)

    @defer.inlineCallbacks
    def test_badCredentialsAndThrottle(self) -> Any:
        """A wrong password is 401; after the throttle's limit even the right one is 429."""
        for _ in range(3):
            with self.assertRaises(SessionError) as caught:
                yield defer.ensureDeferred(
                    self.manager.login(makeRequest(b"POST"), 100, "bob", "x")
                )
            self.assertEqual(
                (caught.exception.status, caught.exception.code), (401, "bad_credentials")
            )
        with self.assertRaises(SessionError) as caught:
            yield defer.ensureDeferred(
                self.manager.login(makeRequest(b"POST"), 100, "bob", "bob-password")
            )
        self.assertEqual(caught.exception.status, 429)
        self.assertGreater(caught.exception.retryAfter, 0)

    @defer.inlineCallbacks
    def test_badInputCostsNothing(self) -> Any:
        """Malformed fields are 400 before any hashing; a malformed cookie costs no query."""
        for licence, nick, password in [("x", "a", "b"), (100, "", "b"), (100, "a", None)]:
            with self.assertRaises(SessionError) as caught:
                yield defer.ensureDeferred(
                    self.manager.login(makeRequest(b"POST"), licence, nick, password)
                )
            self.assertEqual(caught.exception.status, 400)
        self.assertIsNone((yield self.current(b"not a token")))
        self.assertIsNone((yield self.current(b"A" * 43)))

    # -- expiry ----------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_idleExpiry(self) -> Any:
        """Use keeps a session; SESSION_IDLE_TIMEOUT without any ends it."""
        _, token, _ = yield self.login()
        self.clock.advance(IDLE - 1)
        self.assertIsNotNone((yield self.current(token)))
        self.clock.advance(IDLE - 1)
        self.assertIsNotNone((yield self.current(token)))
        self.clock.advance(IDLE)
        self.assertIsNone((yield self.current(token)))
        self.clock.advance(-IDLE)  # even if the clock went back, it is gone
        self.assertIsNone((yield self.current(token)))

    @defer.inlineCallbacks
    def test_absoluteExpiry(self) -> Any:
        """However busy, a session ends SESSION_MAX_AGE after its login."""
        _, token, _ = yield self.login()
        elapsed = 0.0
        while elapsed + 300 < MAX_AGE:
            self.clock.advance(300)
            elapsed += 300
            self.assertIsNotNone((yield self.current(token)), elapsed)
        self.clock.advance(MAX_AGE - elapsed)
        self.assertIsNone((yield self.current(token)))

    # -- CSRF ------------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_csrf(self) -> Any:
        """
        A state-changing request needs the session's token in X-CSRF-Token
        and, with an Origin, this server's own; a GET needs nothing.
        """
        session, _, _ = yield self.login()
        self.manager.requireCsrf(makeRequest(b"GET"), session)
        for method in (b"POST", b"PUT", b"PATCH", b"DELETE"):
            with self.assertRaises(SessionError) as caught:
                self.manager.requireCsrf(makeRequest(method), session)
            self.assertEqual((caught.exception.status, caught.exception.code), (403, "csrf"))
        with self.assertRaises(SessionError):
            self.manager.requireCsrf(
                makeRequest(b"POST", headers={"x-csrf-token": session.csrf + "x"}), session
            )
        self.manager.requireCsrf(
            makeRequest(b"POST", headers={"x-csrf-token": session.csrf}), session
        )
        self.manager.requireCsrf(
            makeRequest(
                b"POST",
                headers={"x-csrf-token": session.csrf, "origin": "http://chat.example.com"},
            ),
            session,
        )
        with self.assertRaises(SessionError):
            self.manager.requireCsrf(
                makeRequest(
                    b"POST",
                    headers={"x-csrf-token": session.csrf, "origin": "http://evil.example"},
                ),
                session,
            )

    # -- ending sessions ---------------------------------------------------------------

    @defer.inlineCallbacks
    def test_logout(self) -> Any:
        """Logging out ends that session only, and tells whoever listens on this node."""
        one, tokenOne, _ = yield self.login()
        _, tokenTwo, _ = yield self.login()
        ended: list[str] = []
        self.manager.onEnded(one.idHash, lambda: ended.append("one"))
        yield defer.ensureDeferred(self.manager.logout(one))
        self.assertEqual(ended, ["one"])
        self.assertIsNone((yield self.current(tokenOne)))
        self.assertIsNotNone((yield self.current(tokenTwo)))

    @defer.inlineCallbacks
    def test_logoutEverywhere(self) -> Any:
        """Every session of the operator ends, of every scope; a colleague's stays."""
        panel = self.makeManager(scope="panel", cookieName="lcsp", cookiePath="/")
        _, agentToken, _ = yield self.login()
        _, panelToken, _ = yield self.login(manager=panel)
        _, bobToken, _ = yield self.login("bob")
        count = yield defer.ensureDeferred(self.manager.logoutEverywhere(self.anna))
        self.assertEqual(count, 2)
        self.assertIsNone((yield self.current(agentToken)))
        self.assertIsNone((yield self.current(panelToken, panel, b"lcsp")))
        self.assertIsNotNone((yield self.current(bobToken)))

    @defer.inlineCallbacks
    def test_disabledOperator(self) -> Any:
        """Disabling an operator (by any means) ends their sessions at the next request."""
        _, token, _ = yield self.login("bob")
        yield self.store.updateOperator(100, "bob", disabled=True)
        self.assertIsNone((yield self.current(token)))
        self.assertEqual((yield self.store.listOperatorWebSessions(100, self.bob.id)), [])

    @defer.inlineCallbacks
    def test_scopesAndAdminOnly(self) -> Any:
        """An agent session opens no panel; the panel takes administrators only."""
        panel = self.makeManager(scope="panel", cookieName="lcsp", cookiePath="/", adminOnly=True)
        _, agentToken, _ = yield self.login()
        self.assertIsNone((yield self.current(agentToken, panel, b"lcsp")))
        with self.assertRaises(SessionError) as caught:
            yield self.login("bob", manager=panel)
        self.assertEqual((caught.exception.status, caught.exception.code), (403, "forbidden"))
        _, panelToken, attrs = yield self.login(manager=panel)
        self.assertIn(b"Path=/", attrs)
        self.assertIsNotNone((yield self.current(panelToken, panel, b"lcsp")))
        yield self.store.updateOperator(100, "anna", is_admin=False)
        self.assertIsNone((yield self.current(panelToken, panel, b"lcsp")))

    @defer.inlineCallbacks
    def test_perOperatorCap(self) -> Any:
        """Beyond SESSION_MAX_PER_OPERATOR the least recently used session ends."""
        manager = self.makeManager(maxPerOperator=2)
        _, first, _ = yield self.login(manager=manager)
        self.clock.advance(120)
        _, second, _ = yield self.login(manager=manager)
        self.clock.advance(120)
        self.assertIsNotNone((yield self.current(first, manager)))  # now the most recent use
        _, third, _ = yield self.login(manager=manager)
        self.assertIsNotNone((yield self.current(first, manager)))
        self.assertIsNone((yield self.current(second, manager)))
        self.assertIsNotNone((yield self.current(third, manager)))

    @defer.inlineCallbacks
    def test_purge(self) -> Any:
        """The service's purge drops ended sessions from the table."""
        yield self.login()
        self.clock.advance(IDLE + 1)
        yield self.login("bob")
        dropped = yield self.store.purgeWebSessions(
            int(self.clock.seconds() * 1000), int(IDLE * 1000)
        )
        self.assertEqual(dropped, 1)
        self.assertEqual(len((yield self.store.listOperatorWebSessions(100, self.bob.id))), 1)

    # -- the resources over HTTP -----------------------------------------------------------

    @defer.inlineCallbacks
    def test_resources(self) -> Any:
        """
        Over a real Site: login (JSON only, own origin only), who am I,
        log out refused without the CSRF token and done with it.
        """
        from twisted.internet import reactor

        manager = SessionManager(
            self.store,
            reactor,
            SessionSettings(cookiePath="/agent/"),
            portal=makePortal(self.store, self.hasher, LoginThrottle(reactor), reactor),
            secret=GOOD_SECRET.encode(),
        )
        root = resource.Resource()
        agent = resource.Resource()
        root.putChild(b"agent", agent)
        mountSessionResources(agent, manager)
        base = serveSite(self, server.Site(root)) + "agent/"
        body = json.dumps({"licence": 100, "nick": "anna", "password": "anna-password"}).encode()

        code, _, raw = yield httpRequest(
            "POST", base + "login", body, {"Content-Type": "text/plain"}
        )
        self.assertEqual(code, 415)
        origin = base.rstrip("/").rsplit("/", 1)[0]
        code, _, raw = yield httpRequest(
            "POST",
            base + "login",
            body,
            {"Content-Type": "application/json", "Origin": "http://evil.example"},
        )
        self.assertEqual((code, json.loads(raw)["error"]), (403, "csrf"))
        code, _, raw = yield httpRequest("GET", base + "session")
        self.assertEqual((code, json.loads(raw)["error"]), (401, "unauthorized"))

        code, headers, raw = yield httpRequest(
            "POST", base + "login", body, {"Content-Type": "application/json", "Origin": origin}
        )
        self.assertEqual(code, 200, raw)
        me = json.loads(raw)
        self.assertEqual(me["operator"]["nick"], "anna")
        setCookie = headers.getRawHeaders(b"set-cookie")[0]
        token = cookieValue(setCookie.decode().split(";")[0], "lcs")
        cookie = {"Cookie": f"lcs={token}"}
        code, _, raw = yield httpRequest("GET", base + "session", None, cookie)
        self.assertEqual(json.loads(raw)["csrfToken"], me["csrfToken"])
        code, _, raw = yield httpRequest("POST", base + "logout", b"", cookie)
        self.assertEqual((code, json.loads(raw)["error"]), (403, "csrf"))
        code, _, raw = yield httpRequest(
            "POST", base + "logout", b"", {**cookie, "X-CSRF-Token": me["csrfToken"]}
        )
        self.assertEqual(code, 200)
        code, _, _ = yield httpRequest("GET", base + "session", None, cookie)
        self.assertEqual(code, 401)


globals().update(bothDialects(SessionTestsMixin, "SessionTests"))


class ServiceTests(DialectMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def test_secretSurvivesARestart(self) -> Any:
        """
        With SESSION_SECRET empty, the secret made at the first start is
        found again by the next start (on the same database), so sessions
        survive a restart; managers made before the start get it.
        """
        url = self.databaseURL()
        secrets = []
        for _ in range(2):
            store = yield self.openStore(url)
            sessions = SessionService(store, config(), task.Clock(), None)
            manager = sessions.manager(SessionSettings())
            yield sessions.startService()
            secrets.append(sessions.secret)
            self.assertEqual(
                manager.hashToken("x" * 43),
                SessionManager(
                    store, task.Clock(), SessionSettings(), secret=sessions.secret
                ).hashToken("x" * 43),
            )
            sessions.stopService()
            yield store.close()
        self.assertEqual(secrets[0], secrets[1])
