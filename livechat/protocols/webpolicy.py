"""
Who may use the web side, and how much: the settings of the Web section of
lc_serv.cfg, the client's real address behind trusted proxies, each
licence's allow-list of site origins (CORS) and bans, and rate limits per
visitor and per address.

Rate limits are token buckets kept on each node (a visitor whose requests
go to several nodes of a cluster gets each node's allowance); the licence
settings come through a L{livechat.licencesettings.SettingsCache}.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

import attr
from twisted.internet import defer
from twisted.logger import Logger

from livechat.licencesettings import Bans, SettingsCache, normalOrigin, originAllowed
from livechat.model import LICENCE_MAX, LICENCE_MIN


@attr.s(frozen=True, auto_attribs=True, kw_only=True)
class WebSettings:
    """The Web section of lc_serv.cfg, as the web side uses it."""

    trustedProxies: tuple[str, ...] = ()
    maxMessageBytes: int = 32768
    sendBuffer: int = 262144
    pingInterval: float = 25.0
    pingTimeout: float = 20.0
    deflate: bool = False
    maxTabs: int = 20
    messageRate: float = 20.0
    """Per minute."""
    messageBurst: int = 10
    chatRate: float = 6.0
    """Per hour."""
    chatBurst: int = 3
    addressRate: float = 600.0
    """Per minute."""
    addressBurst: int = 300
    tokenDays: int = 365
    settingsCache: float = 10.0
    helloTimeout: float = 10.0

    @classmethod
    def fromConfig(cls, config: Any) -> WebSettings:
        return cls(
            trustedProxies=tuple(config["TRUSTED_PROXIES"]),
            maxMessageBytes=config["WEB_MAX_MESSAGE_BYTES"],
            sendBuffer=config["WEB_SEND_BUFFER"],
            pingInterval=config["WEB_PING_INTERVAL"],
            pingTimeout=config["WEB_PING_TIMEOUT"],
            deflate=config["WEB_DEFLATE"],
            maxTabs=config["WEB_MAX_TABS"],
            messageRate=config["WEB_MESSAGE_RATE"],
            messageBurst=config["WEB_MESSAGE_BURST"],
            chatRate=config["WEB_CHAT_RATE"],
            chatBurst=config["WEB_CHAT_BURST"],
            addressRate=config["WEB_ADDRESS_RATE"],
            addressBurst=config["WEB_ADDRESS_BURST"],
            tokenDays=config["WEB_TOKEN_DAYS"],
            settingsCache=config["WEB_SETTINGS_CACHE"],
        )


class WebRefused(Exception):
    """
    A web request is refused.  C{code} is the wire's error code, C{status}
    the HTTP status (or the WebSocket close reason's class).
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


# -- the client behind proxies ------------------------------------------------------


@attr.s(frozen=True, auto_attribs=True)
class Client:
    """Where a request comes from, as seen through trusted proxies."""

    address: str
    secure: bool
    host: str
    """The Host the client used (C{example.com:8443}), lower case."""

    @property
    def ownOrigin(self) -> str | None:
        """This server's origin as the client reached it (admitted by C{self})."""
        if not self.host:
            return None
        try:
            return normalOrigin(("https://" if self.secure else "http://") + self.host)
        except ValueError:
            return None


class Proxies:
    """Believes C{X-Forwarded-*} headers only from the configured proxies."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(n) for n in trusted)

    def trusts(self, address: str) -> bool:
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in n for n in self.networks)

    def client(
        self,
        peer: str,
        secure: bool,
        header: Callable[[str], str | None],
    ) -> Client:
        """
        The client of a request that came from C{peer} (over TLS when
        C{secure}); C{header(name)} reads a request header.  The forwarded
        chain is read from the right, past trusted proxies only.
        """
        host = (header("host") or "").strip().lower()
        if not self.trusts(peer):
            return Client(peer, secure, host)
        address = peer
        chain = [a.strip() for a in (header("x-forwarded-for") or "").split(",") if a.strip()]
        for hop in reversed(chain):
            address = hop
            if not self.trusts(hop):
                break
        proto = (header("x-forwarded-proto") or "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            secure = proto == "https"
        forwardedHost = (header("x-forwarded-host") or "").split(",")[0].strip().lower()
        try:
            ipaddress.ip_address(address)
        except ValueError:
            address = peer
        return Client(address, secure, forwardedHost or host)


# -- rate limits --------------------------------------------------------------------


class RateLimiter:
    """
    Token buckets by key: C{rate} tokens per second up to C{burst}.  At
    most C{maxKeys} buckets are kept; full ones are forgotten first.
    """

    def __init__(self, clock: Any, rate: float, burst: int, maxKeys: int = 100000) -> None:
        self._clock = clock
        self.rate = rate
        self.burst = burst
        self.maxKeys = maxKeys
        self._buckets: dict[Any, tuple[float, float]] = {}

    def configure(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst

    def allow(self, key: Any, cost: float = 1.0) -> bool:
        """Take C{cost} tokens from C{key}'s bucket if it has them."""
        now = self._clock.seconds()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            return False
        if key not in self._buckets and len(self._buckets) >= self.maxKeys:
            self._prune(now)
        self._buckets[key] = (tokens - cost, now)
        return True

    def retryAfter(self, key: Any, cost: float = 1.0) -> float:
        """Seconds until C{key} could spend C{cost}."""
        now = self._clock.seconds()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        return max(0.0, (cost - tokens) / self.rate) if self.rate > 0 else float("inf")

    def _prune(self, now: float) -> None:
        for key, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self._buckets[key]
        if len(self._buckets) >= self.maxKeys:
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


class Limits:
    """The three limits of the web side, on one clock."""

    def __init__(self, clock: Any, settings: WebSettings) -> None:
        self.messages = RateLimiter(clock, 0, 1)
        self.chats = RateLimiter(clock, 0, 1)
        self.addresses = RateLimiter(clock, 0, 1)
        self.configure(settings)

    def configure(self, settings: WebSettings) -> None:
        self.messages.configure(settings.messageRate / 60.0, settings.messageBurst)
        self.chats.configure(settings.chatRate / 3600.0, settings.chatBurst)
        self.addresses.configure(settings.addressRate / 60.0, settings.addressBurst)

    def address(self, address: str) -> None:
        """Count one request of C{address}; L{WebRefused} (429) when over."""
        if not self.addresses.allow(address):
            raise WebRefused(
                "rate_limited",
                f"too many requests from your address; retry in "
                f"{self.addresses.retryAfter(address):.0f} s",
                429,
            )

    def message(self, licence: int, visitorId: str) -> None:
        key = (licence, visitorId)
        if not self.messages.allow(key):
            raise WebRefused(
                "rate_limited",
                f"too many messages; retry in {self.messages.retryAfter(key):.0f} s",
                429,
            )

    def chat(self, licence: int, visitorId: str) -> None:
        key = (licence, visitorId)
        if not self.chats.allow(key):
            raise WebRefused(
                "rate_limited",
                f"too many requests for a chat; retry in {self.chats.retryAfter(key):.0f} s",
                429,
            )


# -- the door -----------------------------------------------------------------------


def parseLicence(value: Any) -> int:
    """A licence number from a request; L{WebRefused} when it is not one."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str) and value.isdigit() and len(value) <= 10:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WebRefused("bad_request", "licence is a number", 400)
    if not LICENCE_MIN <= value <= LICENCE_MAX:
        raise WebRefused("not_found", f"no licence {value}", 404)
    return value


@functools.lru_cache(maxsize=1024)
def _bans(entries: tuple[str, ...]) -> Bans:
    return Bans.of(entries)


class Door:
    """
    Admits a request to a licence: the licence exists and is usable, the
    request's origin is on its allow-list, the address is not banned.
    """

    _log = Logger()

    def __init__(self, settings: SettingsCache, clock: Any) -> None:
        self.settings = settings
        self._clock = clock

    def admit(self, licence: int, origin: str | None, client: Client) -> defer.Deferred[Any]:
        """
        Fires with the L{livechat.model.Licence}, or fails with
        L{WebRefused}: 404 (no such licence, or expired or disabled), 403
        (origin not allowed, or the address banned).
        """
        cache = self.settings
        hit = [cache.peek(licence, n) for n in ("", "web.origins", "web.banned")]
        if all(fresh for fresh, _ in hit):
            try:
                return defer.succeed(self._check(licence, origin, client, *(v for _, v in hit)))
            except WebRefused:
                return defer.fail()

        async def slow() -> Any:
            info = await cache.licence(licence)
            if info is None:
                return self._check(licence, origin, client, None, [], [])
            origins = await cache.get(licence, "web.origins")
            banned = await cache.get(licence, "web.banned")
            return self._check(licence, origin, client, info, origins, banned)

        return defer.ensureDeferred(slow())

    def _check(
        self, licence: int, origin: str | None, client: Client, info: Any, origins: Any, banned: Any
    ) -> Any:
        if info is None or info.disabled or info.isExpired(int(self._clock.seconds() * 1000)):
            raise WebRefused("not_found", f"no licence {licence} here", 404)
        if origin is None or not originAllowed(origin, origins, client.ownOrigin):
            raise WebRefused(
                "origin_refused",
                f"origin {origin or '(none)'} may not use licence {licence}; "
                "add it to the licence's allowed origins (web.origins)",
                403,
            )
        if banned and _bans(tuple(banned)).banned(client.address):
            raise WebRefused("banned", "your address may not use this chat", 403)
        return info
