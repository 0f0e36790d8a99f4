"""
``lc_serv.cfg``: the server's configuration file, read into one immutable
L{Config}.

The format is the seed's own: one ``KEY value`` pair per line, ``#`` starts a
comment line, blank lines are ignored.  Every key the server knows is listed
in L{KEYS} with its parser, default and description; an unknown key or a bad
value stops start-up with the file name, the line number and the reason.
Options given on the command line override the file.  ``kill -HUP`` reads the
file again: keys marked C{live} take effect at once, the others are reported
as needing a restart.
"""

from __future__ import annotations

import ipaddress
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attr


class ConfigError(Exception):
    """
    A configuration value is wrong.  C{str()} of it is the message an operator
    sees: C{"lc_serv.cfg:12: HTTP_LISTEN: <reason>"}.
    """

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")


class BadValue(ValueError):
    """Raised by a value parser; the message says what is wrong."""


# -- value parsers ----------------------------------------------------------


def _string(value: str) -> str:
    return value


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off", ""):
        return False
    raise BadValue(f"expected 0 or 1, got {value!r}")


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value, 10)
        except ValueError:
            raise BadValue(f"expected a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise BadValue(f"{number} is out of range {low}..{high}")
        return number

    parse.__doc__ = f"whole number {low}..{high}"
    return parse


def _number(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise BadValue(f"expected a number, got {value!r}") from None
        if not low <= number <= high:
            raise BadValue(f"{number:g} is out of range {low:g}..{high:g}")
        return number

    return parse


_ENDPOINT_TYPES = ("tcp", "tcp6", "ssl", "unix", "systemd")


def _endpoint(value: str) -> str:
    """
    A Twisted server endpoint description such as C{tcp:13200:interface=::1}.
    The syntax and the port number are checked here; files named by an
    C{ssl:} endpoint are checked when the service is built.
    """
    if not value:
        raise BadValue("an endpoint is required, e.g. tcp:13200:interface=127.0.0.1")
    kind = value.split(":", 1)[0]
    if kind not in _ENDPOINT_TYPES:
        raise BadValue(f"unknown endpoint type {kind!r}; use one of {', '.join(_ENDPOINT_TYPES)}")
    if kind in ("tcp", "tcp6", "ssl"):
        parts = value.split(":")
        if len(parts) < 2:
            raise BadValue(f"{kind}: endpoint needs a port, e.g. {kind}:13200")
        port = parts[1]
        if port.startswith("port="):
            port = port[len("port=") :]
        try:
            number = int(port)
        except ValueError:
            raise BadValue(f"port {port!r} is not a number") from None
        if not 0 <= number <= 65535:
            raise BadValue(f"port {number} is out of range 0..65535")
    return value


def _disabled_or_endpoint(value: str) -> str:
    """An endpoint, or C{none} to switch the listener off."""
    if value.lower() in ("none", "off", ""):
        return ""
    return _endpoint(value)


def _database_url(value: str) -> str:
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme == "sqlite":
        if parts.netloc:
            raise BadValue(
                "sqlite URLs are sqlite:///absolute/path/db_livechat.sqlite3 "
                "(three slashes), got a host part"
            )
        if not parts.path or parts.path == "/":
            raise BadValue("sqlite URL needs a file path")
        return value
    if parts.scheme in ("mysql", "mariadb"):
        if not parts.hostname:
            raise BadValue("mysql URL needs a host: mysql://user:pass@host:3306/")
        try:
            _ = parts.port
        except ValueError as e:
            raise BadValue(f"bad port in mysql URL: {e}") from None
        for name, _ in parse_qsl(parts.query):
            if name not in ("prefix", "pool_min", "pool_max", "charset", "connect_timeout"):
                raise BadValue(f"unknown mysql URL option {name!r}")
        return value
    raise BadValue(f"DATABASE must be a sqlite:/// or mysql:// URL, got {value!r}")


def _redis_url(value: str) -> str:
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise BadValue(f"REDIS must be a redis:// URL or empty, got {value!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise BadValue("REDIS URL needs a host: redis://127.0.0.1:6379/0")
    try:
        _ = parts.port
    except ValueError as e:
        raise BadValue(f"bad port in REDIS URL: {e}") from None
    for name, _ in parse_qsl(parts.query):
        if name != "prefix":
            raise BadValue(f"unknown REDIS URL option {name!r} (only prefix=)")
    return value


def _http_url(value: str) -> str:
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadValue(f"expected an http:// or https:// URL, got {value!r}")
    try:
        _ = parts.port
    except ValueError as e:
        raise BadValue(f"bad port in URL: {e}") from None
    return value


def _public_url(value: str) -> str:
    """An http(s) URL without query or fragment, or empty."""
    if not value:
        return ""
    parts = urlsplit(_http_url(value))
    if parts.query or parts.fragment:
        raise BadValue(f"a base URL has no query or fragment, got {value!r}")
    return value


def _ip_address(value: str) -> str:
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise BadValue(f"expected an IP address, got {value!r}") from None


def _email(value: str) -> str:
    if value and not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise BadValue(f"expected an e-mail address, got {value!r}")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.upper() not in choices:
            raise BadValue(f"expected one of {', '.join(choices)}, got {value!r}")
        return value.upper()

    return parse


def _apiSecret(value: str) -> str:
    if value and len(value) < 32:
        raise BadValue("a key of at least 32 characters is required (or empty: off)")
    return value


def _path(value: str) -> str:
    return os.path.expanduser(value) if value else ""


def _networks(value: str) -> tuple[str, ...]:
    """Addresses or networks (CIDR), separated by commas or spaces."""
    found = []
    for item in re.split(r"[\s,]+", value.strip()):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise BadValue(f"expected IP addresses or networks, got {item!r}") from None
    return tuple(found)


# -- the keys ---------------------------------------------------------------


@attr.s(frozen=True, auto_attribs=True)
class Key:
    """One configuration key: how to read it, its default, what it is for."""

    name: str
    parse: Callable[[str], Any]
    default: str
    doc: str
    live: bool = False
    secret: bool = False
    section: str = ""


EVENT_NAMES = (
    "NEW_LICENCE",
    "NEW_OPERATOR",
    "LICENCE_INFO",
    "NEW_OPERATOR_SUBSCRIPTION",
    "OPERATOR_TRANSFER",
    "OPERATOR_STATUS",
    "BUTTON_STATUS",
    "CHAT_STARTED",
    "PRIVATE_CHAT_STATUS",
    "CLIENT_INVITED",
    "OPERATOR_STOPED_CHAT",
    "VISITOR_LEFT_CHAT",
)
"""The twelve RPC events of the seed, in its order and with its spelling."""

LOG_CHANNEL_KEYS = ("LOG_PACKETS", "LOG_EVENTS", "LOG_SOCKETS", "LOG_SCRIPT", "LOG_CONTROL")


def _keys() -> Iterator[Key]:
    s = "Listening"
    yield Key(
        "HTTP_LISTEN",
        _endpoint,
        "tcp:13200:interface=127.0.0.1",
        "Public HTTP port: monitoring, widget, WebSocket, REST API, /health.",
        section=s,
    )
    yield Key(
        "IWCS_LISTEN",
        _disabled_or_endpoint,
        "tcp:13201:interface=127.0.0.1",
        "IWCS TCP port for controls and agent applications (none = off).",
        section=s,
    )
    yield Key(
        "PANEL_LISTEN",
        _disabled_or_endpoint,
        "tcp:8443:interface=127.0.0.1",
        "Control panel; keep it on a local network (none = off).",
        section=s,
    )

    s = "Storage"
    yield Key(
        "DATA_DIR",
        _path,
        "data",
        "Data directory: sqlite files, uploads. Relative paths are "
        "relative to the working directory.",
        section=s,
    )
    yield Key(
        "DATABASE",
        _database_url,
        "",
        "Database URL. Empty: sqlite:///<DATA_DIR>/db_livechat.sqlite3. "
        "MariaDB: mysql://user:password@host:3306/db_livechat "
        "(options: ?prefix=, pool_min=, pool_max=).",
        section=s,
    )
    yield Key(
        "REDIS",
        _redis_url,
        "",
        "Redis URL for running several nodes (redis://host:6379/0; ?prefix= "
        "puts a prefix on every key and channel). Empty: a single node with "
        "an in-memory bus.",
        section=s,
    )
    yield Key(
        "PRESENCE_TTL",
        _integer(3, 3600),
        "30",
        "With REDIS: seconds an operator's presence and routing availability live in "
        "Redis unless their node refreshes them (every third of it); a node that dies "
        "disappears from presence after at most this long.",
        section=s,
    )
    yield Key(
        "LICENCE_FILE",
        _path,
        "",
        "Licence file (lc_licence.cfg). Empty: lc_licence.cfg beside this file, when there is one.",
        section=s,
    )
    yield Key(
        "DEMO_LICENCE",
        _boolean,
        "1",
        "On the very first start, create a demo licence and operator "
        "and print their credentials once (0/1).",
        section=s,
    )

    s = "Accounts and security"
    yield Key(
        "SESSION_SECRET",
        _string,
        "",
        "Secret that keys browser sessions and signs visitor tokens: at least 32 random "
        "characters, the same on every node. Empty: a random one made at the first start and "
        "kept in the database. A short or well-known value stops the server (see DEV_MODE).",
        secret=True,
        section=s,
    )
    yield Key(
        "MAX_CHATS_PER_AGENT",
        _integer(0, 1000),
        "3",
        "Licence default of parallel chats per operator (0 = none routed).",
        live=True,
        section=s,
    )
    yield Key(
        "LOGIN_MAX_FAILURES",
        _integer(1, 10000),
        "5",
        "Failed logins allowed per licence+nick in LOGIN_FAILURE_WINDOW.",
        live=True,
        section=s,
    )
    yield Key(
        "LOGIN_MAX_FAILURES_PER_ADDRESS",
        _integer(1, 100000),
        "20",
        "Failed logins allowed per source address in LOGIN_FAILURE_WINDOW.",
        live=True,
        section=s,
    )
    yield Key(
        "LOGIN_FAILURE_WINDOW",
        _integer(1, 86400),
        "900",
        "Seconds over which failed logins are counted.",
        live=True,
        section=s,
    )
    yield Key(
        "DEV_MODE",
        _boolean,
        "0",
        "Development mode (0/1): an empty or weak SESSION_SECRET is replaced by a random "
        "one per process (sessions end at a restart), with a loud warning. Never in production.",
        section=s,
    )

    s = "Browser sessions: the web agent and the control panel"
    yield Key(
        "SESSION_IDLE_TIMEOUT",
        _integer(60, 2592000),
        "7200",
        "Seconds without any request after which a browser session ends.",
        section=s,
    )
    yield Key(
        "SESSION_MAX_AGE",
        _integer(300, 7776000),
        "86400",
        "Seconds after its login at which a browser session ends, however busy.",
        section=s,
    )
    yield Key(
        "SESSION_MAX_PER_OPERATOR",
        _integer(1, 1000),
        "20",
        "Browser sessions an operator may hold at once; a new login ends the oldest beyond it.",
        section=s,
    )
    yield Key(
        "SESSION_CHECK_INTERVAL",
        _integer(5, 3600),
        "60",
        "Seconds between checks that the session of an open agent WebSocket still holds "
        "(a logout on another node or a disabled operator closes it within this time).",
        section=s,
    )
    yield Key(
        "AGENT_MAX_MESSAGE_BYTES",
        _integer(1024, 1048576),
        "65536",
        "Largest message the web agent may send over its WebSocket, or body of a POST, in bytes.",
        section=s,
    )
    yield Key(
        "AGENT_RATE",
        _integer(1, 100000),
        "20",
        "Requests per second one operator may make on average over the web agent's "
        "WebSockets (all their tabs together); beyond AGENT_BURST each is refused "
        "with rate_limited.",
        section=s,
    )
    yield Key(
        "AGENT_BURST",
        _integer(1, 1000000),
        "100",
        "Requests one operator may make at once above AGENT_RATE.",
        section=s,
    )
    yield Key(
        "AGENT_SEND_BUFFER",
        _integer(65536, 67108864),
        "4194304",
        "Bytes queued to one agent WebSocket that cannot keep up; beyond it the connection "
        "is cut (the agent reconnects and resumes).",
        section=s,
    )
    yield Key(
        "CANNED_MAX_PER_LICENCE",
        _integer(1, 100000),
        "1000",
        "Canned responses a licence may keep (its own and its operators' together).",
        section=s,
    )
    yield Key(
        "CANNED_MAX_LENGTH",
        _integer(1, 100000),
        "2000",
        "Longest canned response, in characters.",
        section=s,
    )

    s = "Chats"
    yield Key(
        "CHAT_ACCEPT_TIMEOUT",
        _integer(1, 3600),
        "30",
        "Seconds an operator has to accept an offered chat before it goes to the next one.",
        live=True,
        section=s,
    )
    yield Key(
        "OPERATOR_GRACE",
        _integer(0, 3600),
        "60",
        "Seconds an operator whose last connection dropped stays online "
        "(to reconnect) before their chats are routed to others.",
        section=s,
    )
    yield Key(
        "ORPHAN_SWEEP_INTERVAL",
        _integer(1, 3600),
        "15",
        "Seconds between the checks for chats nobody looks after (their operator's "
        "node died, or a node restarted): one node per interval hands back the chats "
        "of operators gone for OPERATOR_GRACE and withdraws offers that outlived "
        "CHAT_ACCEPT_TIMEOUT.",
        section=s,
    )
    yield Key(
        "VISITOR_IDLE_TIMEOUT",
        _integer(30, 86400),
        "600",
        "Seconds without a page view or connection after which a visitor "
        "leaves the list (and an open chat of theirs is closed).",
        section=s,
    )
    yield Key(
        "MAX_MESSAGE_LENGTH",
        _integer(1, 100000),
        "4000",
        "Longest chat message, in characters.",
        live=True,
        section=s,
    )
    yield Key(
        "MAX_VISITORS_PER_LICENCE",
        _integer(10, 10000000),
        "20000",
        "Visitors kept in the live list per licence; beyond it the one idle longest is dropped.",
        section=s,
    )

    s = "IWCS protocol"
    yield Key(
        "IWCS_MAX_LINE",
        _integer(256, 1048576),
        "16384",
        "Longest IWCS packet line, in bytes; a longer line is refused with an error.",
        section=s,
    )
    yield Key(
        "IWCS_IDLE_TIMEOUT",
        _integer(5, 3600),
        "90",
        "Seconds without any packet after which an IWCS connection is "
        "closed (clients PING more often).",
        live=True,
        section=s,
    )
    yield Key(
        "IWCS_MAX_ERRORS",
        _integer(1, 1000),
        "10",
        "Protocol errors a connection may make before it is closed.",
        live=True,
        section=s,
    )
    yield Key(
        "IWCS_RATE",
        _integer(1, 100000),
        "50",
        "Packets per second a connection may send on average; a flood beyond IWCS_BURST closes it.",
        live=True,
        section=s,
    )
    yield Key(
        "IWCS_BURST",
        _integer(1, 1000000),
        "200",
        "Packets a connection may send at once above IWCS_RATE.",
        live=True,
        section=s,
    )
    yield Key(
        "IWCS_SEND_BUFFER",
        _integer(4096, 67108864),
        "262144",
        "Bytes waiting for an IWCS client that does not read; beyond it the "
        "connection is cut (the client resumes when it reconnects).",
        live=True,
        section=s,
    )
    yield Key(
        "IWCS_MAX_VISITORS",
        _integer(1, 1000000),
        "1000",
        "Visitors one IWCS control connection may follow (FOLLOW, CHAT_REQUEST) at once.",
        live=True,
        section=s,
    )
    yield Key(
        "VERIFY_KEY_FILE",
        _path,
        "",
        "Public key (PEM, Ed25519 or RSA) that verifies the identity "
        "parameters of IWCS0002C. Empty: lc_verify_pub.key beside this "
        "file, when there is one.",
        section=s,
    )

    s = "Mail"
    yield Key("SMTP_HOST", _string, "localhost", "SMTP server for outgoing mail.", section=s)
    yield Key("SMTP_PORT", _integer(1, 65535), "25", "SMTP port.", section=s)
    yield Key("SMTP_USER", _string, "", "SMTP user name (empty: no authentication).", section=s)
    yield Key("SMTP_PASSWORD", _string, "", "SMTP password.", secret=True, section=s)
    yield Key("SMTP_FROM", _email, "livechat@localhost", "Sender address of mail.", section=s)
    yield Key("SMTP_STARTTLS", _boolean, "0", "Require STARTTLS (0/1).", section=s)

    s = "Web: monitoring code, widget, WebSocket and SSE"
    yield Key(
        "TRUSTED_PROXIES",
        _networks,
        "",
        "Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For, "
        "-Proto and -Host headers are believed. Empty: none; the peer is the visitor.",
        section=s,
    )
    yield Key(
        "WEB_MAX_MESSAGE_BYTES",
        _integer(1024, 1048576),
        "32768",
        "Largest request a visitor may send, in bytes: one WebSocket message or one "
        "HTTP POST body. Larger ones are refused.",
        section=s,
    )
    yield Key(
        "WEB_SEND_BUFFER",
        _integer(4096, 16777216),
        "262144",
        "Bytes queued to one visitor connection that cannot keep up; beyond it the "
        "connection is cut (it resumes when it reconnects).",
        section=s,
    )
    yield Key(
        "WEB_PING_INTERVAL",
        _integer(5, 600),
        "25",
        "Seconds between heartbeats on an idle WebSocket or SSE stream.",
        section=s,
    )
    yield Key(
        "WEB_PING_TIMEOUT",
        _integer(2, 600),
        "20",
        "Seconds a WebSocket may take to answer a heartbeat before it is closed.",
        section=s,
    )
    yield Key(
        "WEB_DEFLATE",
        _boolean,
        "0",
        "Accept permessage-deflate on WebSockets (0/1); off saves memory per connection.",
        section=s,
    )
    yield Key(
        "WEB_MAX_TABS",
        _integer(1, 1000),
        "20",
        "Connections (tabs) one visitor may hold open on a node.",
        section=s,
    )
    yield Key(
        "WEB_MESSAGE_RATE",
        _integer(1, 100000),
        "20",
        "Chat messages a visitor may send per minute on average (per node).",
        live=True,
        section=s,
    )
    yield Key(
        "WEB_MESSAGE_BURST",
        _integer(1, 100000),
        "10",
        "Chat messages a visitor may send at once above WEB_MESSAGE_RATE.",
        live=True,
        section=s,
    )
    yield Key(
        "WEB_CHAT_RATE",
        _integer(1, 100000),
        "6",
        "Chat requests, left messages and transcript mails a visitor may ask "
        "for per hour on average (per node).",
        live=True,
        section=s,
    )
    yield Key(
        "WEB_CHAT_BURST",
        _integer(1, 100000),
        "3",
        "Chat requests, left messages and transcript mails at once above WEB_CHAT_RATE.",
        live=True,
        section=s,
    )
    yield Key(
        "WEB_ADDRESS_RATE",
        _integer(1, 10000000),
        "600",
        "Requests (page views, chat requests, messages) one address may make per "
        "minute on average (per node).",
        live=True,
        section=s,
    )
    yield Key(
        "WEB_ADDRESS_BURST",
        _integer(1, 10000000),
        "300",
        "Requests one address may make at once above WEB_ADDRESS_RATE.",
        live=True,
        section=s,
    )
    yield Key(
        "WEB_TOKEN_DAYS",
        _integer(1, 3650),
        "365",
        "Days a visitor token (the widget's cookie) stays valid; it is renewed on visits.",
        section=s,
    )
    yield Key(
        "WEB_SETTINGS_CACHE",
        _integer(0, 3600),
        "10",
        "Seconds a node keeps a licence's web settings (origins, bans, office "
        "hours, widget look) before reading them again.",
        live=True,
        section=s,
    )

    s = "RPC webhooks (the seed's EVENT_* parameters)"
    for event in EVENT_NAMES:
        yield Key(
            f"EVENT_{event}",
            _http_url,
            "",
            f"URL requested on the {event} event (empty: not sent).",
            live=True,
            section=s,
        )
    yield Key(
        "RPC_SERVER_IP",
        _ip_address,
        "",
        "Address the webhook requests are sent to; the URL's host stays "
        "in the Host header. Empty: resolve the URL's host.",
        live=True,
        section=s,
    )

    s = "Webhook delivery and REST API"
    yield Key(
        "WEBHOOK_METHOD",
        _choice("POST", "GET"),
        "POST",
        "HTTP method of the EVENT_* requests: POST (form body) or GET (query string).",
        live=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_TIMEOUT",
        _integer(1, 300),
        "10",
        "Seconds a webhook receiver has to answer before the attempt counts as failed.",
        live=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_RETRY_FOR",
        _integer(60, 30 * 86400),
        "86400",
        "Seconds a failing delivery is retried (exponential backoff with jitter) "
        "before it is dead; dead deliveries can be replayed.",
        live=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_CONCURRENCY",
        _integer(1, 1000),
        "20",
        "Webhook requests a node has in flight at most.",
        live=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_ENDPOINT_CONCURRENCY",
        _integer(1, 100),
        "4",
        "Webhook requests in flight to one endpoint at most (a slow receiver "
        "cannot take all of WEBHOOK_CONCURRENCY).",
        live=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_ALLOW_PRIVATE",
        _boolean,
        "0",
        "Let URLs that licences set through the API reach loopback, private and "
        "link-local addresses (0/1). Keep 0 unless every licence is trusted.",
        live=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_SECRET",
        _string,
        "",
        "Secret that signs the EVENT_* requests (HMAC-SHA256). Empty: one is "
        "generated at the first start and kept in the database "
        "(livechat-admin webhook-secret shows it).",
        secret=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_SEND_PASSWORD",
        _boolean,
        "0",
        "Send PASSWORD with NEW_LICENCE and NEW_OPERATOR, as the seed does (0/1). "
        "Only passwords set through the REST API are known; they stay in the "
        "database in clear text until delivered.",
        live=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_KEEP_DAYS",
        _integer(1, 3650),
        "7",
        "Days delivered and dead deliveries are kept (for the delivery log and replay).",
        live=True,
        section=s,
    )
    yield Key(
        "WEBHOOK_SWEEP",
        _integer(1, 3600),
        "30",
        "Seconds between scans of every licence for events written by other nodes or processes.",
        live=True,
        section=s,
    )
    yield Key(
        "SERVER_API_KEY",
        _apiSecret,
        "",
        "Server-level REST API credential (Authorization: Bearer <key>) that may "
        "create and list licences; at least 32 characters. Empty: off.",
        secret=True,
        section=s,
    )
    yield Key(
        "API_RATE",
        _integer(1, 100000),
        "20",
        "REST API requests per second one API key may make on average.",
        live=True,
        section=s,
    )
    yield Key(
        "API_BURST",
        _integer(1, 1000000),
        "100",
        "REST API requests one key may make at once above API_RATE; beyond it, 429.",
        live=True,
        section=s,
    )
    yield Key(
        "API_MAX_BODY",
        _integer(1024, 64 * 1048576),
        "1048576",
        "Largest REST API request body, in bytes; a larger one is refused with 413. "
        "Also the largest message on the connector's WebSocket (closed with 1009).",
        live=True,
        section=s,
    )
    yield Key(
        "CONNECTOR_SEND_BUFFER",
        _integer(4096, 256 * 1048576),
        "1048576",
        "Bytes of notifications that may wait for a connector WebSocket that "
        "reads too slowly; beyond it the connection is cut (the app resumes "
        "from the transcript; its webhooks keep every event).",
        live=True,
        section=s,
    )
    yield Key(
        "API_MAX_KEYS",
        _integer(1, 10000),
        "50",
        "API keys a licence may have at once (revoked ones do not count).",
        live=True,
        section=s,
    )

    s = "Control panel"
    yield Key(
        "PUBLIC_URL",
        _public_url,
        "",
        "Where browsers reach the public port (https://chat.example.com/), for the "
        "embed snippet the panel shows. Empty: the address of HTTP_LISTEN.",
        live=True,
        section=s,
    )
    yield Key(
        "REPORT_MAX_DAYS",
        _integer(1, 3660),
        "366",
        "Most days one report of the panel (or of /api/v1/reports) may cover.",
        live=True,
        section=s,
    )

    s = "Process"
    yield Key(
        "GC_FREEZE",
        _boolean,
        "1",
        "Once the node has started, set what it made so far aside from Python's cyclic "
        "garbage collector (gc.freeze): its collections no longer walk the node's "
        "long-lived objects (0/1).",
        section=s,
    )
    yield Key(
        "GC_THRESHOLD",
        _integer(100, 1000000),
        "20000",
        "Allocations between two collections of the youngest generation by Python's "
        "cyclic garbage collector, from the start (Python's own default: 700). Higher: "
        "fewer collections on a busy node, and up to this many more objects waiting to "
        "be freed.",
        section=s,
    )

    s = "Logs"
    yield Key(
        "LC_LOG_PATH",
        _path,
        "",
        "Directory of the per-channel log files below (empty: none).",
        live=True,
        section=s,
    )
    yield Key(
        "LOG_NAME_SHORT",
        _boolean,
        "0",
        "Short log names without the date; better with logrotate (0/1).",
        live=True,
        section=s,
    )
    yield Key("LOG_PACKETS", _boolean, "0", "Write packets<date>.log (0/1).", live=True, section=s)
    yield Key("LOG_EVENTS", _boolean, "0", "Write events<date>.log (0/1).", live=True, section=s)
    yield Key("LOG_SOCKETS", _boolean, "0", "Write sockets<date>.log (0/1).", live=True, section=s)
    yield Key("LOG_SCRIPT", _boolean, "0", "Write lc_script<date>.log (0/1).", live=True, section=s)
    yield Key(
        "LOG_CONTROL",
        _boolean,
        "0",
        "Write control<date>.log: monitoring-script requests (0/1).",
        live=True,
        section=s,
    )


KEYS: Mapping[str, Key] = {key.name: key for key in _keys()}


# -- reading ----------------------------------------------------------------

_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?:[ \t]+(?P<value>.*?))?[ \t]*$")


def parseLines(lines: Iterable[str], source: str) -> dict[str, tuple[str, int]]:
    """
    Read C{KEY value} lines into C{{KEY: (raw value, line number)}}.

    @raise ConfigError: on a malformed line, an unknown or a repeated key.
    """
    found: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(stripped)
        if match is None:
            raise ConfigError(source, number, f"cannot read {stripped[:60]!r}; expected KEY value")
        key = match.group("key").upper()
        if key not in KEYS:
            raise ConfigError(source, number, f"unknown key {key}{_suggest(key)}")
        if key in found:
            raise ConfigError(source, number, f"{key} is set twice (first on line {found[key][1]})")
        found[key] = (match.group("value") or "", number)
    return found


def _suggest(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, KEYS, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


@attr.s(frozen=True, auto_attribs=True)
class Config:
    """
    The whole configuration: every key of L{KEYS} with its parsed value.

    Read values with C{config["HTTP_LISTEN"]}.  C{origins} says where each
    value came from (C{"default"}, C{"lc_serv.cfg:12"}, C{"command line"}).
    """

    values: Mapping[str, Any]
    origins: Mapping[str, str]
    path: str | None = None
    overrides: Mapping[str, str] = attr.Factory(dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def dataDir(self) -> str:
        """The data directory, absolute."""
        return os.path.abspath(self.values["DATA_DIR"])

    @property
    def databaseURL(self) -> str:
        """C{DATABASE}, or the default sqlite file in the data directory."""
        url = self.values["DATABASE"]
        if url:
            return url
        return "sqlite:///" + os.path.join(self.dataDir, "db_livechat.sqlite3").lstrip("/")

    @property
    def licenceFile(self) -> str | None:
        """The licence file to read, or C{None} when there is none."""
        path = self.values["LICENCE_FILE"]
        if path:
            return path
        if self.path:
            beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), "lc_licence.cfg")
            if os.path.exists(beside):
                return beside
        return None

    @property
    def verifyKeyFile(self) -> str | None:
        """The IWCS0002C public key file, or C{None} when there is none."""
        path = self.values["VERIFY_KEY_FILE"]
        if path:
            return path
        if self.path:
            beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), "lc_verify_pub.key")
            if os.path.exists(beside):
                return beside
        return None

    def webhookURLs(self) -> dict[str, str]:
        """C{{event name: URL}} for every C{EVENT_*} key that is set."""
        return {
            event: self.values[f"EVENT_{event}"]
            for event in EVENT_NAMES
            if self.values[f"EVENT_{event}"]
        }

    def describe(self, key: str) -> str:
        """The value of C{key} as safe to log (secrets masked)."""
        value = self.values[key]
        if KEYS[key].secret and value:
            return "********"
        return repr(value)

    def changes(self, other: Config) -> list[str]:
        """Keys whose value differs between this config and C{other}."""
        return [k for k in KEYS if self.values[k] != other.values[k]]


def buildConfig(
    fileValues: Mapping[str, tuple[str, int]],
    overrides: Mapping[str, str],
    source: str | None,
) -> Config:
    """
    Parse the raw values of a file and of the command line into a L{Config}.

    @param fileValues: C{{KEY: (raw, line)}} from L{parseLines}.
    @param overrides: C{{KEY: raw}} from the command line; they win.
    @raise ConfigError: naming the file and line (or the command line).
    """
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, key in KEYS.items():
        if name in overrides:
            raw, origin, line, where = overrides[name], "command line", None, "command line"
        elif name in fileValues:
            raw, line = fileValues[name]
            where = source or "<config>"
            origin = f"{where}:{line}"
        else:
            raw, origin, line, where = key.default, "default", None, "default"
        try:
            values[name] = key.parse(raw)
        except BadValue as e:
            raise ConfigError(where, line, f"{name}: {e}") from None
        origins[name] = origin
    for name in overrides:
        if name not in KEYS:
            raise ConfigError("command line", None, f"unknown key {name}{_suggest(name)}")
    return Config(values=values, origins=origins, path=source, overrides=dict(overrides))


def loadConfig(path: str | None, overrides: Mapping[str, str] | None = None) -> Config:
    """
    Read C{path} (or only the defaults when C{None}) and apply C{overrides}.

    This reads a small file synchronously: call it at start-up or from
    L{reloadConfig}, not on a hot path.

    @raise ConfigError: the file cannot be read, or a line or value is wrong.
    """
    overrides = {k.upper(): v for k, v in (overrides or {}).items()}
    if path is None:
        return buildConfig({}, overrides, None)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(path, None, f"cannot read the file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, None, f"the file is not UTF-8: {e.reason}") from None
    return buildConfig(parseLines(lines, path), overrides, path)


def reloadConfig(current: Config) -> Config:
    """Read the same file again, with the same command-line overrides."""
    return loadConfig(current.path, current.overrides)


def sampleConfig() -> str:
    """
    The documented sample file: every key, commented out, with its default.
    C{etc/lc_serv.cfg} is this text; a test keeps the two equal.
    """
    out = [
        "# lc_serv.cfg -- livechat server configuration.",
        "#",
        "# One KEY value pair per line; lines starting with # are comments.",
        "# Every key is listed below with its default (commented out).",
        "# Keys marked [live] change on `kill -HUP`; the others need a restart.",
        "# Options of `twistd livechat` override this file (twistd livechat --help).",
    ]
    section = None
    for key in KEYS.values():
        if key.section != section:
            section = key.section
            out += ["", f"## {section}", ""]
        live = " [live]" if key.live else ""
        out.extend(textwrap.wrap(key.doc + live, 76, initial_indent="# ", subsequent_indent="# "))
        out.append(f"#{key.name} {key.default}".rstrip())
    return "\n".join(out) + "\n"


def keysTable() -> str:
    """The table of every key, as docs/configuration.md shows it."""
    out: list[str] = []
    section = None
    for key in KEYS.values():
        if key.section != section:
            if section is not None:
                out.append("")
            section = key.section
            out += [f"### {section}", "", "| key | default | live | meaning |", "|---|---|---|---|"]
        default = f"`{key.default}`" if key.default else "(empty)"
        out.append(f"| `{key.name}` | {default} | {'yes' if key.live else ''} | {key.doc} |")
    return "\n".join(out) + "\n"


def _main(argv: list[str]) -> int:
    """
    C{python -m livechat.config sample} prints etc/lc_serv.cfg;
    C{python -m livechat.config write} rewrites etc/lc_serv.cfg and the key
    table of docs/configuration.md from L{KEYS} (run it after adding a key).
    """
    import sys

    if argv == ["sample"]:
        sys.stdout.write(sampleConfig())
        return 0
    if argv == ["write"]:
        with open("etc/lc_serv.cfg", "w", encoding="utf-8") as f:
            f.write(sampleConfig())
        with open("docs/configuration.md", encoding="utf-8") as f:
            text = f.read()
        head = text[: text.index("## All keys")]
        with open("docs/configuration.md", "w", encoding="utf-8") as f:
            f.write(head + "## All keys\n\n" + keysTable())
        return 0
    sys.stderr.write("usage: python -m livechat.config sample|write\n")
    return 2


if __name__ == "__main__":
    import sys

    sys.exit(_main(sys.argv[1:]))
