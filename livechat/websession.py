"""
Browser sessions of people who log in: the web agent (C{/agent/} on the
public port) and the control panel (C{PANEL_LISTEN}).

Sessions live on the server, in the global database (table
C{web_sessions}), so that "log out everywhere" and disabling an operator
end every session at once, and any node of a cluster can check any
session.  The browser holds a cookie with a random token (256 bits); the
database holds only its HMAC keyed by the session secret, so a copy of the
table opens no session.

Use
===

One L{SessionService} per node (made by C{makeService}, named
C{"sessions"}, started after the store) loads the secret and hands out
managers, one per kind of page (C{scope})::

    sessions = SessionService(parts.store, config, reactor, parts.portal)
    manager = sessions.manager(SessionSettings.fromConfig(
        config, scope="panel", cookieName="lcsp", cookiePath="/", adminOnly=True))

    root.putChild(b"api", guarded(manager, handler))   # see below
    mountSessionResources(root, manager)  # POST login, logout, logout-everywhere; GET session

The manager (L{SessionManager}):

 - C{await manager.login(request, licence, nick, password)} -> L{Session}:
   checks the password through the cred portal (and its login throttle),
   stores the session, sets the cookie on C{request}.  Fails with
   L{SessionError} (401 C{bad_credentials}, 429 C{throttled}, 403 C{disabled},
   C{expired}, C{over_seats}, C{forbidden}, ...).
 - C{await manager.current(request)} -> L{Session} or C{None}: the session
   of the request's cookie, if it exists, is of this scope, has not expired
   (idle: C{SESSION_IDLE_TIMEOUT}; absolute: C{SESSION_MAX_AGE}) and its
   operator and licence are not disabled (nor expired).  Its use is recorded
   (at most once a minute).
 - C{manager.requireCsrf(request, session)}: raises L{SessionError} 403
   unless the request carries the session's token in C{X-CSRF-Token} (and,
   when it has an C{Origin}, comes from this server's own origin).  Safe
   methods (GET, HEAD, OPTIONS) need nothing.
 - C{await manager.logout(session)}, C{await manager.logoutEverywhere(operator)}
   (an L{Operator}; every scope), C{manager.clearCookie(request)}.
 - C{manager.onEnded(idHash, callback)}: called when that session is ended
   on this node (logout, log out everywhere), e.g. to close a WebSocket at
   once; other nodes notice at their next check.

L{guarded}C{(manager, handler)} is a twisted.web resource that answers 401
without a session and 403 without the CSRF token on a state-changing
method, and otherwise calls C{await handler(request, session)}; the handler
returns something JSON-able (200), a L{JSONAnswer} (another status), or
raises L{SessionError}.

The cookie: C{<name>=<token>; Path=<path>; HttpOnly; SameSite=Strict}, and
C{Secure} when the request came over https (directly, or through a proxy
of C{TRUSTED_PROXIES} that says C{X-Forwarded-Proto: https}).  The CSRF
token is given by C{login} and C{GET session} (its JSON: C{csrfToken}).

The secret
==========

C{SESSION_SECRET}, when set, must be at least 32 characters and not a
well-known value ("changeme", "secret", ...): L{checkSessionSecret} stops
the server otherwise.  When it is empty, a random secret is made at the
first start and kept in the global database (C{server_state}), where every
node finds it.  With C{DEV_MODE 1} a weak or empty secret is replaced by a
random one per process (sessions end at a restart), with a loud warning.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

import attr
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web import resource, server

from livechat import jsontext
from livechat.auth import LoginRefused
from livechat.auth import login as portalLogin
from livechat.config import Config, ConfigError
from livechat.model import Licence, Operator
from livechat.protocols.webpolicy import Client, Proxies, normalOrigin
from livechat.storage.websessions import SessionRow

STATE_NAME = "session_secret"
MIN_SECRET_LENGTH = 32
WEAK_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "changeit",
        "secret",
        "password",
        "default",
        "session key",
        "default session key",
        "your_secret",
        "your-secret",
        "yoursecret",
        "session_secret",
        "session-secret",
        "sessionsecret",
        "development",
        "test",
        "livechat",
        "please change me",
        "keyboard cat",
    }
)
"""Values seen in sample configs and tutorials (compared case-insensitively,
also with any of them repeated to reach the length)."""

SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")
CSRF_HEADER = "X-CSRF-Token"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
MAX_FIELD = 200


# -- the secret --------------------------------------------------------------------


def secretProblem(value: str) -> str | None:
    """Why C{value} is not a usable C{SESSION_SECRET}, or C{None} if it is."""
    if len(value) < MIN_SECRET_LENGTH:
        return f"it has {len(value)} characters; at least {MIN_SECRET_LENGTH} are needed"
    lowered = re.sub(r"[^a-z0-9]", "", value.lower())
    for weak in WEAK_SECRETS:
        plain = re.sub(r"[^a-z0-9]", "", weak)
        if plain in lowered and lowered.replace(plain, "") == "":
            return "it is a well-known default value"
    if len(set(value)) < 8:
        return "it repeats too few characters to be random"
    return None


def checkSessionSecret(config: Config) -> None:
    """
    Refuse a weak C{SESSION_SECRET} (empty is fine: one is made at the first
    start), unless C{DEV_MODE} is on.

    @raise ConfigError: naming the key, where it was set and what is wrong.
    """
    value = config["SESSION_SECRET"]
    if not value or config["DEV_MODE"]:
        return
    problem = secretProblem(value)
    if problem is not None:
        raise ConfigError(
            config.origins.get("SESSION_SECRET", "configuration"),
            None,
            f"SESSION_SECRET is not safe to use: {problem}. Set it to 32 or more random "
            f"characters (e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`), "
            f"leave it empty to have one made and kept in the database, or start with "
            f"--dev (DEV_MODE 1) on a development machine",
        )


async def loadSessionSecret(store: Any, config: Config, log: Logger | None = None) -> bytes:
    """
    The secret that keys the session hashes: C{SESSION_SECRET}; when empty,
    the one kept in the database (made by whichever node asks first); in
    C{DEV_MODE} with an empty or weak value, a random one for this process.
    """
    value = config["SESSION_SECRET"]
    if config["DEV_MODE"]:
        if log is not None:
            log.warn(
                "*** DEV_MODE is on: development only, never in production. ***{why}",
                why=(
                    " SESSION_SECRET is empty or weak, so a random one is used for this "
                    "process: every browser session ends when it stops."
                    if not value or secretProblem(value)
                    else ""
                ),
            )
        if not value or secretProblem(value):
            return secrets.token_bytes(32)
    if value:
        if secretProblem(value):
            raise ConfigError("SESSION_SECRET", None, secretProblem(value) or "")
        return value.encode("utf-8")
    await store.claimState(STATE_NAME, secrets.token_hex(32))
    kept = await store.getState(STATE_NAME)
    if not kept:
        raise RuntimeError("no session secret in server_state")
    return bytes.fromhex(kept)


# -- sessions ----------------------------------------------------------------------


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class SessionSettings:
    """How the sessions of one kind of page behave."""

    scope: str = "agent"
    """What the session opens (C{agent}, C{panel}): a session of one scope is
    no session for another."""
    cookieName: str = "lcs"
    cookiePath: str = "/agent/"
    idleTimeout: float = 7200.0
    maxAge: float = 86400.0
    maxPerOperator: int = 20
    touchEvery: float = 60.0
    """Record a session's use at most this often (seconds)."""
    trustedProxies: tuple[str, ...] = ()
    adminOnly: bool = False
    """Only licence administrators may log in (the control panel)."""

    @classmethod
    def fromConfig(cls, config: Any, **kw: Any) -> SessionSettings:
        idle = float(config["SESSION_IDLE_TIMEOUT"])
        values: dict[str, Any] = dict(
            idleTimeout=idle,
            maxAge=float(config["SESSION_MAX_AGE"]),
            maxPerOperator=int(config["SESSION_MAX_PER_OPERATOR"]),
            touchEvery=min(60.0, idle / 10),
            trustedProxies=tuple(config["TRUSTED_PROXIES"]),
        )
        values.update(kw)
        return cls(**values)


@attr.s(frozen=True, auto_attribs=True)
class Session:
    """A logged-in browser: who, since when, and its CSRF token."""

    idHash: str
    scope: str
    licence: Licence
    operator: Operator
    createdAt: int
    lastSeen: int
    expiresAt: int
    csrf: str
    userAgent: str = ""
    address: str = ""

    def toJSON(self, idleTimeout: float) -> dict[str, Any]:
        """What the page learns of its session (C{GET session}, login)."""
        op = self.operator
        return {
            "licence": self.licence.number,
            "licenceName": self.licence.name,
            "operator": {
                "id": op.id,
                "ref": f"op:{op.id}",
                "nick": op.nick,
                "name": op.displayName,
                "operatorId": op.operator_id,
                "isAdmin": op.is_admin,
            },
            "csrfToken": self.csrf,
            "createdAt": self.createdAt,
            "expiresAt": self.expiresAt,
            "idleTimeout": idleTimeout,
        }


class SessionError(Exception):
    """A refusal, answered as C{{"error": code, "message": message}} with C{status}."""

    def __init__(self, status: int, code: str, message: str, retryAfter: float = 0.0) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryAfter = retryAfter


_LOGIN_STATUS = {
    "bad_credentials": 401,
    "throttled": 429,
    "disabled": 403,
    "licence_disabled": 403,
    "expired": 403,
    "over_seats": 403,
}


def _header(request: Any, name: str) -> str | None:
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _text(value: Any, name: str, limit: int = MAX_FIELD) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SessionError(400, "bad_request", f"{name} is required text")
    if len(value) > limit:
        raise SessionError(400, "bad_request", f"{name} has at most {limit} characters")
    return value


def cookieValue(cookieHeader: str | None, name: str) -> str | None:
    """The value of cookie C{name} in a C{Cookie:} header, or C{None}."""
    if not cookieHeader:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookieHeader)
    except CookieError:
        # One malformed cookie of the site must not hide ours.
        for part in cookieHeader.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"')
        return None
    morsel = jar.get(name)
    return None if morsel is None else morsel.value


class SessionManager:
    """
    Sessions of one scope: log in, find, check, end.  See the module
    docstring.  C{store} provides the C{*WebSession*} methods of
    L{livechat.interfaces.IStore}; C{clock} tells the time (a C{task.Clock}
    in tests); C{portal} checks passwords (the node's cred portal).
    """

    _log = Logger()

    def __init__(
        self,
        store: Any,
        clock: Any,
        settings: SessionSettings,
        *,
        portal: Any = None,
        secret: bytes | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self.portal = portal
        self.proxies = Proxies(settings.trustedProxies)
        self._key: bytes | None = None
        self._ended: dict[str, list[Callable[[], None]]] = {}
        if secret is not None:
            self.setSecret(secret)

    def setSecret(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"livechat browser sessions v1", hashlib.sha256).digest()

    def _now(self) -> int:
        return int(self.clock.seconds() * 1000)

    def hashToken(self, token: str) -> str:
        if self._key is None:
            raise RuntimeError("the session secret is not loaded yet")
        return hmac.new(self._key, token.encode("ascii"), hashlib.sha256).hexdigest()

    # -- who is asking ---------------------------------------------------------------

    def clientOf(self, request: Any) -> Client:
        """Address, https or not, and host of a twisted.web request."""
        peer = request.getClientAddress()
        return self.proxies.client(
            getattr(peer, "host", "") or "", request.isSecure(), lambda n: _header(request, n)
        )

    def originAllowed(self, origin: str | None, client: Client) -> bool:
        """Whether C{origin} is this server's own, as the client reached it."""
        if not origin or origin == "null":
            return False
        try:
            return normalOrigin(origin) == client.ownOrigin
        except ValueError:
            return False

    # -- log in and out --------------------------------------------------------------

    async def login(self, request: Any, licence: Any, nick: Any, password: Any) -> Session:
        """
        Check the credentials (through the portal and its throttle), store a
        new session and set its cookie on C{request}.

        @raise SessionError: the refusal, with its HTTP status.
        """
        if isinstance(licence, str) and licence.strip().isdigit():
            licence = int(licence.strip())
        if not isinstance(licence, int) or isinstance(licence, bool) or not 0 < licence < 2**31:
            raise SessionError(400, "bad_request", "licence is a licence number")
        nick = _text(nick, "nick", 64)
        password = _text(password, "password", 1024)
        client = self.clientOf(request)
        try:
            avatar = await portalLogin(self.portal, licence, nick, password, client.address)
        except LoginRefused as e:
            raise SessionError(
                _LOGIN_STATUS.get(e.code, 403), e.code, e.message, e.retryAfter
            ) from None
        operator: Operator = avatar.operator
        if self.settings.adminOnly and not operator.is_admin:
            raise SessionError(403, "forbidden", "only licence administrators may log in here")
        token = secrets.token_urlsafe(32)
        now = self._now()
        row = SessionRow(
            idHash=self.hashToken(token),
            scope=self.settings.scope,
            licence=avatar.licence.number,
            operator=operator.id,
            createdAt=now,
            lastSeen=now,
            expiresAt=now + int(self.settings.maxAge * 1000),
            csrf=secrets.token_urlsafe(32),
            userAgent=(_header(request, "user-agent") or "")[:255],
            address=client.address[:64],
        )
        await self.store.createWebSession(
            row, self.settings.maxPerOperator, int(self.settings.idleTimeout * 1000)
        )
        self.setCookie(request, token, client)
        self._log.info(
            "{scope} login: licence {licence} operator {nick} from {address}",
            scope=self.settings.scope,
            licence=avatar.licence.number,
            nick=operator.nick,
            address=client.address,
        )
        return self._session(row, avatar.licence, operator)

    def _session(self, row: SessionRow, licence: Licence, operator: Operator) -> Session:
        return Session(
            idHash=row.idHash,
            scope=row.scope,
            licence=licence,
            operator=operator,
            createdAt=row.createdAt,
            lastSeen=row.lastSeen,
            expiresAt=row.expiresAt,
            csrf=row.csrf,
            userAgent=row.userAgent,
            address=row.address,
        )

    async def logout(self, session: Session) -> None:
        """End one session (on every node)."""
        await self.store.deleteWebSession(session.idHash)
        self._fireEnded([session.idHash])

    async def logoutEverywhere(self, operator: Operator) -> int:
        """End every session of C{operator}, of every scope; how many were ended."""
        hashes = await self.store.deleteOperatorWebSessions(operator.licence, operator.id)
        self._fireEnded(hashes)
        self._log.info(
            "every session of operator {nick} of licence {licence} ended ({count})",
            nick=operator.nick,
            licence=operator.licence,
            count=len(hashes),
        )
        return len(hashes)

    def onEnded(self, idHash: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call C{callback} when this session is ended on this node; returns a canceller."""
        self._ended.setdefault(idHash, []).append(callback)

        def cancel() -> None:
            callbacks = self._ended.get(idHash, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._ended.pop(idHash, None)

        return cancel

    def _fireEnded(self, hashes: list[str]) -> None:
        for idHash in hashes:
            for callback in self._ended.pop(idHash, []):
                try:
                    callback()
                except Exception:
                    self._log.failure("session-ended callback")

    # -- finding a session -----------------------------------------------------------

    async def current(self, request: Any) -> Session | None:
        """The session of the request's cookie, if good; else C{None}."""
        raw = request.getCookie(self.settings.cookieName.encode("ascii"))
        token = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        return await self.fromToken(token)

    async def fromCookieHeader(self, cookieHeader: str | None) -> Session | None:
        """The session of a C{Cookie:} header (e.g. a WebSocket handshake's)."""
        return await self.fromToken(cookieValue(cookieHeader, self.settings.cookieName))

    async def fromToken(self, token: str | None) -> Session | None:
        if not token or not _TOKEN.match(token):
            return None  # costs no query
        return await self.check(self.hashToken(token))

    async def check(self, idHash: str) -> Session | None:
        """
        The session with this hash if it still holds (and record its use);
        an ended one is removed.
        """
        found = await self.store.getWebSession(idHash)
        if found is None:
            return None
        row, licence, operator = found
        if row.scope != self.settings.scope:
            return None
        now = self._now()
        ended = (
            now >= row.expiresAt
            or now - row.lastSeen >= self.settings.idleTimeout * 1000
            or operator.disabled
            or licence.disabled
            or licence.isExpired(now)
            or (self.settings.adminOnly and not operator.is_admin)
        )
        if ended:
            await self.store.deleteWebSession(idHash)
            self._fireEnded([idHash])
            return None
        if now - row.lastSeen >= self.settings.touchEvery * 1000:
            if not await self.store.touchWebSession(idHash, now):
                return None
            row = attr.evolve(row, lastSeen=now)
        return self._session(row, licence, operator)

    def requireCsrf(self, request: Any, session: Session) -> None:
        """
        A state-changing request must carry the session's CSRF token, and
        come from this server's own origin when it says its origin.

        @raise SessionError: 403 C{csrf} otherwise.
        """
        if request.method in SAFE_METHODS:
            return
        given = _header(request, CSRF_HEADER) or ""
        if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
            raise SessionError(403, "csrf", f"the {CSRF_HEADER} header is missing or wrong")
        origin = _header(request, "origin")
        if origin is not None and not self.originAllowed(origin, self.clientOf(request)):
            raise SessionError(403, "csrf", "the request comes from another origin")

    # -- the cookie --------------------------------------------------------------------

    def setCookie(self, request: Any, token: str, client: Client | None = None) -> None:
        client = client or self.clientOf(request)
        request.addCookie(
            self.settings.cookieName.encode("ascii"),
            token.encode("ascii"),
            path=self.settings.cookiePath.encode("ascii"),
            max_age=str(int(self.settings.maxAge)).encode("ascii"),
            secure=client.secure,
            httpOnly=True,
            sameSite=b"strict",
        )

    def clearCookie(self, request: Any) -> None:
        request.addCookie(
            self.settings.cookieName.encode("ascii"),
            b"",
            path=self.settings.cookiePath.encode("ascii"),
            max_age=b"0",
            secure=self.clientOf(request).secure,
            httpOnly=True,
            sameSite=b"strict",
        )


# -- twisted.web resources -------------------------------------------------------------


@attr.s(frozen=True, auto_attribs=True)
class JSONAnswer:
    """A handler's answer with a status other than 200."""

    status: int
    body: Any


def writeJSON(request: server.Request, status: int, body: Any) -> None:
    if request.finished or getattr(request, "_disconnected", False):
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.write(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    request.finish()


def errorBody(e: SessionError) -> dict[str, Any]:
    body: dict[str, Any] = {"error": e.code, "message": e.message}
    if e.retryAfter:
        body["retryAfter"] = int(e.retryAfter) + 1
    return body


def readJSON(request: server.Request, limit: int) -> Any:
    """The request's body as JSON (at most C{limit} bytes); L{SessionError} 400/413."""
    content = request.content
    if content is None:
        return {}
    content.seek(0, 2)
    size = content.tell()
    if size > limit:
        raise SessionError(413, "too_large", f"a request body has at most {limit} bytes")
    content.seek(0)
    raw = content.read()
    if not raw.strip():
        return {}
    try:
        return jsontext.loads(raw)
    except ValueError:  # bad JSON, or bad UTF-8 (a UnicodeDecodeError)
        raise SessionError(400, "bad_request", "the body is not JSON") from None


Handler = Callable[[server.Request, Session], Awaitable[Any]]


def respond(request: server.Request, work: Awaitable[Any], what: str) -> Any:
    """Run C{work}; write its JSON (or the error) to C{request}; NOT_DONE_YET."""
    log = Logger()

    def done(result: Any) -> None:
        if isinstance(result, JSONAnswer):
            writeJSON(request, result.status, result.body)
        else:
            writeJSON(request, 200, result)

    def failed(f: Any) -> None:
        if f.check(SessionError):
            e = f.value
            if e.status == 429 and e.retryAfter:
                request.setHeader(b"retry-after", str(int(e.retryAfter) + 1).encode())
            writeJSON(request, e.status, errorBody(e))
            return
        log.failure("{what} failed", f, what=what)
        writeJSON(request, 500, {"error": "internal", "message": "the server could not do that"})

    d = defer.ensureDeferred(_awaited(work))
    d.addCallbacks(done, failed)
    return server.NOT_DONE_YET


async def _awaited(work: Awaitable[Any]) -> Any:
    return await work


class Guarded(resource.Resource):
    """
    A JSON endpoint for logged-in people: 401 without a session, 403
    without the CSRF token on a state-changing method, 405 on a method not
    in C{methods}; else C{await handler(request, session)}.
    """

    isLeaf = True

    def __init__(
        self,
        manager: SessionManager,
        handler: Handler,
        methods: tuple[bytes, ...] = (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE"),
    ) -> None:
        super().__init__()
        self.manager = manager
        self.handler = handler
        self.methods = methods

    def render(self, request: server.Request) -> Any:
        return respond(request, self._serve(request), f"{request.method!r} {request.path!r}")

    async def _serve(self, request: server.Request) -> Any:
        if request.method not in self.methods:
            raise SessionError(405, "bad_request", "method not allowed here")
        session = await self.manager.current(request)
        if session is None:
            raise SessionError(401, "unauthorized", "log in first")
        self.manager.requireCsrf(request, session)
        return await self.handler(request, session)


def guarded(manager: SessionManager, handler: Handler, *methods: str) -> Guarded:
    """L{Guarded} for C{handler}, allowing C{methods} (default: all the usual)."""
    if methods:
        return Guarded(manager, handler, tuple(m.upper().encode() for m in methods))
    return Guarded(manager, handler)


class LoginResource(resource.Resource):
    """
    C{POST login} with JSON C{{"licence", "nick", "password"}}: the session
    (as C{GET session}) and the cookie.  Only from this server's own pages:
    a JSON content type (a cross-origin form cannot send one) and, when
    given, this server's own C{Origin}.
    """

    isLeaf = True

    def __init__(self, manager: SessionManager, maxBody: int = 16384) -> None:
        super().__init__()
        self.manager = manager
        self.maxBody = maxBody

    def render_POST(self, request: server.Request) -> Any:
        return respond(request, self._login(request), "login")

    async def _login(self, request: server.Request) -> Any:
        contentType = (_header(request, "content-type") or "").split(";")[0].strip().lower()
        if contentType != "application/json":
            raise SessionError(415, "bad_request", "send the login as application/json")
        origin = _header(request, "origin")
        if origin is not None and not self.manager.originAllowed(
            origin, self.manager.clientOf(request)
        ):
            raise SessionError(403, "csrf", "log in from this server's own page")
        body = readJSON(request, self.maxBody)
        if not isinstance(body, dict):
            raise SessionError(400, "bad_request", "the body is a JSON object")
        session = await self.manager.login(
            request, body.get("licence"), body.get("nick"), body.get("password")
        )
        return session.toJSON(self.manager.settings.idleTimeout)


def mountSessionResources(parent: resource.Resource, manager: SessionManager) -> None:
    """
    Under C{parent}: C{login} (POST), C{session} (GET: who am I, the CSRF
    token), C{logout} and C{logout-everywhere} (POST, CSRF).
    """

    async def whoami(request: server.Request, session: Session) -> Any:
        return session.toJSON(manager.settings.idleTimeout)

    async def logout(request: server.Request, session: Session) -> Any:
        await manager.logout(session)
        manager.clearCookie(request)
        return {"ended": 1}

    async def everywhere(request: server.Request, session: Session) -> Any:
        count = await manager.logoutEverywhere(session.operator)
        manager.clearCookie(request)
        return {"ended": count}

    parent.putChild(b"login", LoginResource(manager))
    parent.putChild(b"session", guarded(manager, whoami, "GET"))
    parent.putChild(b"logout", guarded(manager, logout, "POST"))
    parent.putChild(b"logout-everywhere", guarded(manager, everywhere, "POST"))


# -- the service -------------------------------------------------------------------------


class SessionService(service.Service):
    """
    Loads the session secret at start (after the store opened) into every
    manager it made, and drops ended sessions from the database every hour.
    """

    name = "sessions"  # type: ignore[assignment]
    _log = Logger()
    purgeInterval = 3600.0

    def __init__(self, store: Any, config: Config, clock: Any, portal: Any) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.portal = portal
        self.managers: list[SessionManager] = []
        self.secret: bytes | None = None
        self._purge: task.LoopingCall | None = None

    def manager(self, settings: SessionSettings) -> SessionManager:
        """A manager of one scope, keyed once the service has started (no I/O)."""
        made = SessionManager(self.store, self.clock, settings, portal=self.portal)
        if self.secret is not None:
            made.setSecret(self.secret)
        self.managers.append(made)
        return made

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        self.secret = await loadSessionSecret(self.store, self.config, self._log)
        self._log.info(
            "browser sessions keyed (secret fingerprint {fingerprint})",
            fingerprint=fingerprint(self.secret),
        )
        for manager in self.managers:
            manager.setSecret(self.secret)
        loop = task.LoopingCall(self.purge)
        loop.clock = self.clock
        self._purge = loop
        loop.start(self.purgeInterval, now=False).addErrback(
            lambda f: self._log.failure("session purge loop", f)
        )

    def purge(self) -> defer.Deferred[int]:
        now = int(self.clock.seconds() * 1000)
        idle = int(self.config["SESSION_IDLE_TIMEOUT"] * 1000)
        d = self.store.purgeWebSessions(now, idle)

        def failed(f: Any) -> int:
            self._log.failure("dropping ended sessions", f)
            return 0

        return d.addErrback(failed)

    def stopService(self) -> None:  # type: ignore[override]
        service.Service.stopService(self)
        if self._purge is not None and self._purge.running:
            self._purge.stop()
        self._purge = None


def fingerprint(secret: bytes) -> str:
    """A short, safe-to-log fingerprint of a secret (to compare nodes' secrets)."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"fp" + secret).digest()[:6]).decode()
