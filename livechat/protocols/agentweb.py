"""
The web agent on the public port: plain HTML, CSS and JavaScript served by
the server (no build step), its session endpoints, its WebSocket and the
canned responses' JSON endpoint.

    /agent/                      the app (a login form until logged in)
    /agent/agent.js, agent.css   its script and style
    /agent/login                 POST {"licence", "nick", "password"} (websession)
    /agent/session               GET: who am I, the CSRF token
    /agent/logout                POST (CSRF)
    /agent/logout-everywhere     POST (CSRF)
    /agent/ws                    the agent's WebSocket (protocols.agentws)
    /agent/api/canned            GET the list; POST a new one (CSRF)
    /agent/api/canned/<id>       PUT to change, DELETE (CSRF)

docs/agent.md describes them.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.web import resource, server, util

from livechat.api import RateLimiter
from livechat.core.hub import Core
from livechat.protocols.agentws import AgentCalls, AgentSettings, makeAgentWebSocketResource
from livechat.storage.canned import TooMany
from livechat.storage.errors import NotFound
from livechat.websession import (
    JSONAnswer,
    Session,
    SessionError,
    SessionManager,
    SessionSettings,
    guarded,
    mountSessionResources,
    readJSON,
)

FILES = {
    b"": ("index.html", "text/html; charset=utf-8"),
    b"agent.js": ("agent.js", "application/javascript; charset=utf-8"),
    b"agent.css": ("agent.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SHORTCUT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def loadAgentFiles() -> dict[bytes, tuple[bytes, str]]:
    """Read the app's files (file I/O: off the reactor thread)."""
    folder = resources.files("livechat").joinpath("web", "agent")
    return {
        path: (folder.joinpath(name).read_bytes(), kind) for path, (name, kind) in FILES.items()
    }


class AgentFront:
    """What the agent's resources share; no request state another node would need."""

    def __init__(
        self,
        core: Core,
        sessions: SessionManager,
        settings: AgentSettings,
        clock: Any,
    ) -> None:
        self.core = core
        self.store = core.store
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.calls = AgentCalls(core)
        self.limiter = RateLimiter(clock)
        """Requests per operator, over all their WebSockets on this node."""
        self.files: dict[bytes, tuple[bytes, str]] = {}
        self.channels: set[Any] = set()
        """Open agent WebSockets on this node."""


class AgentFile(resource.Resource):
    """One of the app's static files, with a strict Content-Security-Policy."""

    isLeaf = True

    def __init__(self, front: AgentFront, path: bytes) -> None:
        super().__init__()
        self.front = front
        self.path = path

    def render_GET(self, request: server.Request) -> bytes:
        found = self.front.files.get(self.path)
        if found is None:
            request.setResponseCode(503)
            return b"starting"
        body, kind = found
        request.setHeader(b"content-type", kind.encode())
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        if self.path == b"":
            request.setHeader(b"content-security-policy", CSP.encode())
            request.setHeader(b"x-frame-options", b"DENY")
        return body

    render_HEAD = render_GET


class AgentFolder(resource.Resource):
    """C{/agent}: redirects to C{/agent/}; unknown children are 404."""

    def __init__(self, front: AgentFront) -> None:
        super().__init__()
        self.front = front

    def getChild(self, path: bytes, request: server.Request) -> resource.Resource:
        if path in FILES:
            return AgentFile(self.front, path)
        from livechat.protocols.http import NotFoundResource

        return NotFoundResource()

    def render_GET(self, request: server.Request) -> bytes:
        return util.redirectTo(b"/agent/", request)


# -- canned responses --------------------------------------------------------------------


def _cannedFields(body: Any, maxLength: int) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise SessionError(400, "bad_request", "the body is a JSON object")
    shortcut = body.get("shortcut")
    text = body.get("text")
    if (
        not isinstance(shortcut, str)
        or not 1 <= len(shortcut) <= 64
        or not set(shortcut) <= SHORTCUT_CHARS
    ):
        raise SessionError(
            400, "bad_request", "shortcut has 1 to 64 letters, digits, - or _ (e.g. hello)"
        )
    if not isinstance(text, str) or not text.strip():
        raise SessionError(400, "bad_request", "text is required")
    if len(text) > maxLength:
        raise SessionError(400, "too_large", f"text has at most {maxLength} characters")
    return shortcut, text


def makeCannedHandler(front: AgentFront) -> Any:
    """
    C{/agent/api/canned[/<id>]}: the licence's responses (kept by its
    administrators) and each operator's own.
    """

    async def handle(request: server.Request, session: Session) -> Any:
        store = front.store.forLicence(session.licence.number)
        me = session.operator
        rest = [p for p in request.postpath or [] if p]
        if not rest:
            if request.method == b"GET":
                found = await store.cannedResponses(me.id)
                return {"canned": [c.toJSON() for c in found]}
            if request.method == b"POST":
                body = readJSON(request, front.settings.maxMessageBytes)
                shortcut, text = _cannedFields(body, front.settings.cannedMaxLength)
                owner = _owner(body.get("scope", "operator"), session)
                try:
                    made = await store.createCanned(owner, shortcut, text, front.settings.cannedMax)
                except TooMany as e:
                    raise SessionError(409, "too_many", str(e)) from None
                return JSONAnswer(201, made.toJSON())
            raise SessionError(405, "bad_request", "GET or POST here")
        if len(rest) != 1 or not rest[0].isdigit() or len(rest[0]) > 18:
            raise SessionError(404, "not_found", "no such canned response")
        cannedId = int(rest[0])
        if request.method not in (b"PUT", b"DELETE"):
            raise SessionError(405, "bad_request", "PUT or DELETE here")
        body = readJSON(request, front.settings.maxMessageBytes)
        owner = _owner(body.get("scope", "operator") if isinstance(body, dict) else None, session)
        try:
            if request.method == b"PUT":
                shortcut, text = _cannedFields(body, front.settings.cannedMaxLength)
                changed = await store.updateCanned(cannedId, owner, shortcut, text)
                return changed.toJSON()
            await store.deleteCanned(cannedId, owner)
            return {"deleted": cannedId}
        except NotFound:
            raise SessionError(404, "not_found", f"no canned response {cannedId}") from None

    return handle


def _owner(scope: Any, session: Session) -> int | None:
    if scope == "licence":
        if not session.operator.is_admin:
            raise SessionError(
                403, "forbidden", "only administrators change the licence's canned responses"
            )
        return None
    if scope in (None, "operator"):
        return session.operator.id
    raise SessionError(400, "bad_request", "scope is operator or licence")


# -- composition -----------------------------------------------------------------------


class AgentService(service.Service):
    """Reads the app's files before the listener starts; closes the sockets at stop."""

    name = "agent"  # type: ignore[assignment]
    _log = Logger()

    def __init__(self, front: AgentFront) -> None:
        self.front = front

    def startService(self) -> defer.Deferred[None]:  # type: ignore[override]
        service.Service.startService(self)
        d = threads.deferToThread(loadAgentFiles)

        def loaded(files: dict[bytes, tuple[bytes, str]]) -> None:
            self.front.files = files

        return d.addCallback(loaded)

    def stopService(self) -> None:  # type: ignore[override]
        service.Service.stopService(self)
        for channel in list(self.front.channels):
            channel.close("shutdown")


def mountAgent(root: resource.Resource, front: AgentFront) -> resource.Resource:
    """Put the web agent under C{/agent/} of C{root}; returns its folder."""
    folder = AgentFolder(front)
    root.putChild(b"agent", folder)
    for path in FILES:
        folder.putChild(path, AgentFile(front, path))
    mountSessionResources(folder, front.sessions)
    folder.putChild(b"ws", makeAgentWebSocketResource(front))
    api = resource.Resource()
    folder.putChild(b"api", api)
    api.putChild(b"canned", guarded(front.sessions, makeCannedHandler(front)))
    return folder


def makeAgent(parts: Any, reactor: Any) -> tuple[AgentFront, AgentService]:
    """The web agent of a node (no I/O): its front and the service readying it."""
    config = parts.config
    manager = parts.sessions.manager(
        SessionSettings.fromConfig(config, scope="agent", cookieName="lcs", cookiePath="/agent/")
    )
    front = AgentFront(parts.core, manager, AgentSettings.fromConfig(config), reactor)
    return front, AgentService(front)
