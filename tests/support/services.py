"""
Real MariaDB and Redis servers for livechat's tests.

Tests ask for a server with L{requireMysql} / L{requireRedis} (or
L{mysqlURL} / L{redisURL}) and get back a URL.  Each URL is found in this
order, once per process:

  1. the environment: C{LIVECHAT_TEST_MYSQL_URL} / C{LIVECHAT_TEST_REDIS_URL}
     (it must answer, or L{ServiceUnavailable} names it);
  2. the machine's own server on its standard port
     (C{mysql://root@127.0.0.1:3306/}, C{redis://127.0.0.1:6379/});
  3. a private server started from the installed binaries in a temporary
     directory on a free port, stopped again at process exit.

L{MariaDBServer} and L{RedisServer} can also be used directly by tests that
need a server of their own, e.g. to restart or kill it mid-test.

Everything here blocks: it is test set-up, run before or outside the
reactor.  Every wait is bounded, and failures carry the server's log tail.
Importing this module does no I/O.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import unquote, urlsplit, urlunsplit

import pymysql
from twisted.trial.unittest import SkipTest

MYSQL_URL_ENV = "LIVECHAT_TEST_MYSQL_URL"
REDIS_URL_ENV = "LIVECHAT_TEST_REDIS_URL"
REQUIRE_ENV = "LIVECHAT_REQUIRE_SERVICES"

DEFAULT_MYSQL_URL = "mysql://root@127.0.0.1:3306/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/"

#: Seconds a probe may take to connect and get an answer.
PROBE_TIMEOUT = 2.0
#: Seconds a server may take to answer after being launched.
START_TIMEOUT = 30.0
#: Seconds a server may take to exit after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT = 30.0
#: Seconds mariadb-install-db may take.
INSTALL_TIMEOUT = 120.0

_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/libexec")


class ServiceUnavailable(Exception):
    """
    No usable server could be found or started; the message says what was
    tried and how to fix it.
    """


class _PortInUse(ServiceUnavailable):
    """A server could not bind its port (someone took it first)."""


# --------------------------------------------------------------------------
# URLs and probes


def mysqlConnectArgs(url: str) -> dict[str, Any]:
    """
    Keyword arguments for C{pymysql.connect} from a
    C{mysql://user:password@host:port/database} URL (user defaults to root,
    host to 127.0.0.1, port to 3306; database is left out when empty).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb"):
        raise ValueError(f"not a mysql:// URL: {url!r}")
    args: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "charset": "utf8mb4",
    }
    database = unquote(parts.path.lstrip("/"))
    if database:
        args["database"] = database
    return args


@dataclass(frozen=True)
class RedisAddress:
    """Where a C{redis://[user:password@]host:port[/db]} URL points."""

    host: str
    port: int
    username: str | None
    password: str | None
    db: int


def redisAddress(url: str) -> RedisAddress:
    """Parse a C{redis://} URL (host defaults to 127.0.0.1, port to 6379)."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"not a redis:// URL: {url!r}")
    path = parts.path.strip("/")
    return RedisAddress(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        db=int(path) if path else 0,
    )


def maskURL(url: str) -> str:
    """The URL with any password replaced by C{***}, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def checkMysql(url: str, timeout: float = PROBE_TIMEOUT) -> None:
    """
    Return if the server at C{url} accepts a connection and lets its user
    CREATE and DROP a (uniquely named, scratch) database; raise otherwise.
    """
    args = mysqlConnectArgs(url)
    args.pop("database", None)
    conn = pymysql.connect(
        connect_timeout=timeout, read_timeout=timeout * 5, write_timeout=timeout * 5, **args
    )
    name = f"livechat_probe_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
            cur.execute(f"DROP DATABASE `{name}`")
    finally:
        conn.close()


def pingMysql(url: str, timeout: float = PROBE_TIMEOUT) -> None:
    """Return if C{url} accepts a connection and answers C{SELECT 1}."""
    args = mysqlConnectArgs(url)
    args.pop("database", None)
    conn = pymysql.connect(connect_timeout=timeout, read_timeout=timeout, **args)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


def _respCommand(*words: str) -> bytes:
    """Encode a Redis command in RESP."""
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _readLine(sock: socket.socket) -> bytes:
    """Read one CRLF-terminated reply line (without the CRLF)."""
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1024)
        if not chunk:
            raise ConnectionError(f"connection closed after {buf!r}")
        buf += chunk
        if len(buf) > 65536:
            raise ConnectionError("reply line too long")
    return buf[:-2]


def pingRedis(url: str, timeout: float = PROBE_TIMEOUT) -> None:
    """
    Return if the Redis server at C{url} answers C{PING} with C{+PONG}
    over a raw socket (after C{AUTH} when the URL has a password); raise
    otherwise.
    """
    addr = redisAddress(url)
    with socket.create_connection((addr.host, addr.port), timeout=timeout) as sock:
        if addr.password is not None:
            user = (addr.username,) if addr.username else ()
            sock.sendall(_respCommand("AUTH", *user, addr.password))
            reply = _readLine(sock)
            if reply != b"+OK":
                raise ConnectionError(f"AUTH failed: {reply.decode(errors='replace')}")
        sock.sendall(_respCommand("PING"))
        reply = _readLine(sock)
        if reply != b"+PONG":
            raise ConnectionError(f"PING answered {reply.decode(errors='replace')!r}")


def freePort(host: str = "127.0.0.1") -> int:
    """
    A TCP port that was free a moment ago: bind port 0 on C{host}, note the
    port the kernel chose, and release it.  Another process may take it in
    the tiny window before our server binds it; L{_ServerProcess.start}
    notices that and tries another port when it chose the port itself.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _which(names: tuple[str, ...]) -> str | None:
    """The first of C{names} found on PATH or in the usual sbin directories."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(_SBIN_DIRS)
    for name in names:
        found = shutil.which(name, path=path)
        if found:
            return found
    return None


def _tail(path: str, lines: int = 25) -> str:
    """The last C{lines} lines of the file at C{path} ('' when unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _head(path: str, lines: int = 15) -> str:
    """The first C{lines} lines of the file at C{path} ('' when unreadable)."""
    try:
        with open(path, "rb") as f:
            data = f.read(16384)
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[:lines])


def _dieWithParent() -> None:
    """
    In the child, before exec: ask Linux to SIGTERM this server when the
    thread that started it dies, so a killed test run leaves no orphans.
    (Start servers from the main thread: a worker thread's exit counts.)
    """
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


# --------------------------------------------------------------------------
# Private servers


class _ServerProcess:
    """
    A server run as our child process in a private temporary directory on a
    fixed 127.0.0.1 port.  Subclasses say how to find, prepare, launch and
    probe it.
    """

    #: Human name for messages.
    label = "server"
    #: Debian package that provides the binaries.
    package = ""
    #: Prefix of the temporary directory.
    prefix = "livechat-server-"

    def __init__(self, port: int | None = None, startTimeout: float = START_TIMEOUT) -> None:
        """
        @param port: The port to listen on; L{None} picks a free one at the
            first L{start} and keeps it from then on.
        @param startTimeout: Seconds to wait for the server to answer.
        """
        self._port = port
        self._portFixed = port is not None
        self.startTimeout = startTimeout
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexitRegistered = False

    # -- subclass hooks

    @classmethod
    def missingBinaries(cls) -> list[str]:
        """Names of needed executables that cannot be found."""
        raise NotImplementedError

    @classmethod
    def installed(cls) -> bool:
        """Whether the binaries needed to run this server are installed."""
        return not cls.missingBinaries()

    def _prepare(self, directory: str) -> None:
        """Initialise a fresh private directory (once per directory)."""

    def _command(self, directory: str, port: int) -> list[str]:
        """The argv that runs the server in the foreground."""
        raise NotImplementedError

    def _logPaths(self, directory: str) -> list[str]:
        """Files whose tail explains a failure."""
        return [os.path.join(directory, "stdout.log")]

    def _probe(self) -> None:
        """Return if the server answers on L{url}; raise otherwise."""
        raise NotImplementedError

    def _urlFor(self, port: int) -> str:
        """The client URL for this server on C{port}."""
        raise NotImplementedError

    # -- public interface

    @property
    def port(self) -> int:
        """The port; fixed by the constructor or by the first L{start}."""
        if self._port is None:
            raise RuntimeError(f"{self.label} has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """The URL clients use to reach this server."""
        return self._urlFor(self.port)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else L{None}."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def directory(self) -> str | None:
        """The private temporary directory, if one exists."""
        return self._dir

    @property
    def running(self) -> bool:
        """Whether our server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """
        Launch the server (preparing a private directory first if there is
        none) and wait until it answers.  Does nothing if it already runs.

        @raise ServiceUnavailable: the binaries are missing, or the server
            exited or did not answer within C{startTimeout} seconds; the
            message includes the log tail.
        """
        if self.running:
            return self
        missing = self.missingBinaries()
        if missing:
            raise ServiceUnavailable(
                f"cannot start a private {self.label}: {', '.join(missing)} not found "
                f"(install the Debian package {self.package})"
            )
        if not self._atexitRegistered:
            atexit.register(self.stop)
            self._atexitRegistered = True
        fresh = self._dir is None
        try:
            if self._dir is None:
                self._dir = _makeTempDir(self.prefix)
                self._prepare(self._dir)
            self._launchWithRetries()
        except BaseException:
            if fresh:
                self.stop()  # nothing worth keeping: the message has the log tail
            raise
        return self

    def stop(self) -> None:
        """
        Stop the server (SIGTERM, wait up to L{STOP_TIMEOUT}, then SIGKILL)
        and remove its private directory.  Idempotent; L{start} afterwards
        starts afresh, with empty data, on the same port.
        """
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        if self._atexitRegistered:
            atexit.unregister(self.stop)
            self._atexitRegistered = False

    def restart(self) -> Self:
        """
        Stop the server gracefully and start it again on the same port and
        with the same directory, so clients can reconnect to L{url}.
        """
        self._terminate()
        return self.start()

    def kill(self) -> None:
        """
        SIGKILL the server, as a crash would, and reap it.  The directory is
        kept: L{start} brings it back on the same port, L{stop} cleans up.
        """
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=STOP_TIMEOUT)
        self._proc = None

    def logTail(self, lines: int = 25) -> str:
        """The last lines of the server's logs, labelled, for messages."""
        if self._dir is None:
            return "(no log: the private directory is gone)"
        parts = []
        for path in self._logPaths(self._dir):
            text = _tail(path, lines)
            if text:
                parts.append(f"--- {path} (last lines) ---\n{text}")
        return "\n".join(parts) if parts else "(the server logged nothing)"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        excType: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        port = self._port if self._port is not None else "?"
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{port} {state}>"

    # -- internals

    def _launchWithRetries(self) -> None:
        """
        Launch and wait; if we chose the port and lost the race for it,
        try again with another free port (at most 3 tries).
        """
        attempts = 1 if self._portFixed else 3
        for attempt in range(1, attempts + 1):
            if not self._portFixed:
                self._port = freePort()
            try:
                self._launchAndWait()
            except _PortInUse:
                if attempt == attempts:
                    raise
                continue
            self._portFixed = True
            return

    def _launchAndWait(self) -> None:
        """Launch on C{self._port} and wait until it answers."""
        assert self._dir is not None and self._port is not None
        port = self._port
        with open(os.path.join(self._dir, "stdout.log"), "ab") as out:
            self._proc = subprocess.Popen(
                self._command(self._dir, port),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,
                preexec_fn=_dieWithParent if sys.platform.startswith("linux") else None,
            )
        deadline = time.monotonic() + self.startTimeout
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                tail = self.logTail()
                error = _PortInUse if _looksLikePortInUse(tail) else ServiceUnavailable
                raise error(
                    f"private {self.label} exited with status {code} while starting "
                    f"on 127.0.0.1:{port}\n{tail}"
                )
            try:
                self._probe()
                return
            except Exception as e:
                lastError = e
            if time.monotonic() >= deadline:
                tail = self.logTail()
                self._terminate()
                raise ServiceUnavailable(
                    f"private {self.label} did not answer on 127.0.0.1:{port} within "
                    f"{self.startTimeout:g}s (last error: {lastError})\n{tail}"
                )
            time.sleep(0.1)

    def _terminate(self) -> None:
        """SIGTERM the process and reap it; SIGKILL it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def _looksLikePortInUse(log: str) -> bool:
    """Whether a server's log says its port was taken."""
    return "Address already in use" in log or "errno: 98" in log or "error: 98" in log


def _makeTempDir(prefix: str) -> str:
    """
    A new private temporary directory, short enough to hold a Unix socket
    path (limit ~107 bytes), falling back to /tmp if TMPDIR is deep.
    """
    directory = tempfile.mkdtemp(prefix=prefix)
    if len(directory) > 80 and os.path.isdir("/tmp"):
        os.rmdir(directory)
        directory = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    return directory


class MariaDBServer(_ServerProcess):
    """
    A private MariaDB: C{mariadb-install-db} into a temporary directory,
    then C{mariadbd} on 127.0.0.1 with root and no password, utf8mb4 like
    the Debian default.  Data lives until L{stop}; it survives L{restart}
    and L{kill}.
    """

    label = "MariaDB"
    package = "mariadb-server"
    prefix = "livechat-mariadb-"

    #: Extra server options: small InnoDB files and no DNS, for speed.
    serverOptions = (
        "--innodb-log-file-size=16M",
        "--innodb-buffer-pool-size=64M",
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci",
        "--skip-name-resolve",
    )

    @classmethod
    def serverBinary(cls) -> str | None:
        """Path of C{mariadbd} (or C{mysqld}), if installed."""
        return _which(("mariadbd", "mysqld"))

    @classmethod
    def installBinary(cls) -> str | None:
        """Path of C{mariadb-install-db} (or C{mysql_install_db}), if installed."""
        return _which(("mariadb-install-db", "mysql_install_db"))

    @classmethod
    def missingBinaries(cls) -> list[str]:
        missing = []
        if cls.serverBinary() is None:
            missing.append("mariadbd")
        if cls.installBinary() is None:
            missing.append("mariadb-install-db")
        return missing

    def _userArgs(self) -> list[str]:
        """mariadbd refuses to run as root unless told to."""
        return ["--user=root"] if os.geteuid() == 0 else []

    def _prepare(self, directory: str) -> None:
        """Create the system tables, with root@127.0.0.1 and no password."""
        datadir = os.path.join(directory, "data")
        logPath = os.path.join(directory, "install.log")
        # A private tmpdir: concurrent bootstraps sharing /tmp clash on
        # their temporary table files and fail (seen with trial --jobs).
        os.mkdir(os.path.join(directory, "tmp"))
        command = [
            str(self.installBinary()),
            "--no-defaults",
            "--auth-root-authentication-method=normal",
            f"--datadir={datadir}",
            "--skip-test-db",
            *self._userArgs(),
            f"--tmpdir={os.path.join(directory, 'tmp')}",
            "--innodb-log-file-size=16M",
        ]
        with open(logPath, "wb") as log:
            try:
                code = subprocess.call(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=directory,
                    timeout=INSTALL_TIMEOUT,
                )
            except subprocess.TimeoutExpired:
                code = None
        if code != 0:
            what = (
                f"exited with status {code}"
                if code is not None
                else f"took over {INSTALL_TIMEOUT:g}s"
            )
            raise ServiceUnavailable(
                f"{' '.join(command)} {what}\n--- {logPath} (first lines: the "
                f"error comes first, advice follows) ---\n{_head(logPath)}"
            )

    def _command(self, directory: str, port: int) -> list[str]:
        return [
            str(self.serverBinary()),
            "--no-defaults",
            f"--datadir={os.path.join(directory, 'data')}",
            f"--socket={os.path.join(directory, 'sock')}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={os.path.join(directory, 'mariadbd.pid')}",
            f"--log-error={os.path.join(directory, 'error.log')}",
            f"--tmpdir={os.path.join(directory, 'tmp')}",
            *self._userArgs(),
            *self.serverOptions,
        ]

    def _logPaths(self, directory: str) -> list[str]:
        # install.log is left out: _prepare reports its own failures.
        return [os.path.join(directory, "stdout.log"), os.path.join(directory, "error.log")]

    def _probe(self) -> None:
        pingMysql(self.url, timeout=1.0)

    def _urlFor(self, port: int) -> str:
        return f"mysql://root@127.0.0.1:{port}/"


class RedisServer(_ServerProcess):
    """
    A private Redis on 127.0.0.1 that keeps nothing on disk (no RDB, no
    AOF): its data is lost at L{restart} and L{kill}.
    """

    label = "Redis"
    package = "redis-server"
    prefix = "livechat-redis-"

    @classmethod
    def serverBinary(cls) -> str | None:
        """Path of C{redis-server}, if installed."""
        return _which(("redis-server",))

    @classmethod
    def missingBinaries(cls) -> list[str]:
        return [] if cls.serverBinary() else ["redis-server"]

    def _command(self, directory: str, port: int) -> list[str]:
        return [
            str(self.serverBinary()),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", directory,
            "--daemonize", "no",
        ]  # fmt: skip

    def _probe(self) -> None:
        pingRedis(self.url, timeout=1.0)

    def _urlFor(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/"


# --------------------------------------------------------------------------
# Per-process discovery


@dataclass(frozen=True)
class _Spec:
    """How to find one kind of service."""

    label: str
    envVar: str
    defaultURL: str
    check: Callable[[str], None]
    server: type[_ServerProcess]


@dataclass
class _Found:
    """The outcome of discovery: a URL and where it came from, or an error."""

    url: str | None = None
    origin: str = ""
    server: _ServerProcess | None = None
    error: ServiceUnavailable | None = None


_MYSQL = _Spec("MariaDB", MYSQL_URL_ENV, DEFAULT_MYSQL_URL, checkMysql, MariaDBServer)
_REDIS = _Spec("Redis", REDIS_URL_ENV, DEFAULT_REDIS_URL, pingRedis, RedisServer)

_lock = threading.Lock()
_found: dict[str, _Found] = {}


def _discover(spec: _Spec) -> _Found:
    """
    Find or start a server for C{spec}, uncached.  An unanswering
    environment URL is an error (no fallback): it was asked for explicitly.
    """
    envURL = os.environ.get(spec.envVar, "").strip()
    if envURL:
        try:
            spec.check(envURL)
        except Exception as e:
            return _Found(
                error=ServiceUnavailable(
                    f"{spec.envVar}={maskURL(envURL)} does not work: {e}. "
                    f"Start that {spec.label} server, fix the URL, or unset "
                    f"{spec.envVar} to let the tests find or start one."
                )
            )
        return _Found(url=envURL, origin=f"from {spec.envVar}")

    try:
        spec.check(spec.defaultURL)
    except Exception as e:
        defaultError = f"{spec.defaultURL} does not work ({e})"
    else:
        return _Found(url=spec.defaultURL, origin="already running")

    server = spec.server()
    try:
        server.start()
    except ServiceUnavailable as e:
        server.stop()
        return _Found(
            error=ServiceUnavailable(
                f"No {spec.label} for the tests. Tried: {spec.envVar} (not set); "
                f"{defaultError}; a private server: {e}\n"
                f"Fix: install the Debian package {spec.server.package} "
                f"(apt-get install {spec.server.package}), start a {spec.label} on "
                f"{spec.defaultURL}, or set {spec.envVar} to a server's URL."
            )
        )
    return _Found(url=server.url, origin=f"private, pid {server.pid}", server=server)


def _lookup(spec: _Spec) -> str:
    """The cached discovery result for C{spec}: a URL, or a re-raised error."""
    with _lock:
        found = _found.get(spec.label)
        if found is None:
            found = _found[spec.label] = _discover(spec)
    if found.error is not None:
        raise found.error
    assert found.url is not None
    return found.url


def mysqlURL() -> str:
    """
    URL of a live MariaDB whose user may CREATE/DROP DATABASE, e.g.
    C{mysql://root@127.0.0.1:3306/}: from C{LIVECHAT_TEST_MYSQL_URL}, else the
    machine's server, else a private one started now and stopped at exit.
    Cached per process (failures too).

    @raise ServiceUnavailable: nothing works; the message says what was
        tried and how to fix it.
    """
    return _lookup(_MYSQL)


def redisURL() -> str:
    """
    URL of a live Redis, e.g. C{redis://127.0.0.1:6379/}: from
    C{LIVECHAT_TEST_REDIS_URL}, else the machine's server, else a private one
    started now and stopped at exit.  Cached per process (failures too).

    @raise ServiceUnavailable: nothing works; the message says what was
        tried and how to fix it.
    """
    return _lookup(_REDIS)


def servicesRequired() -> bool:
    """Whether C{LIVECHAT_REQUIRE_SERVICES} asks for failure instead of skips."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _require(getURL: Callable[[], str]) -> str:
    try:
        return getURL()
    except ServiceUnavailable as e:
        if servicesRequired():
            raise
        raise SkipTest(f"{e}\n(set {REQUIRE_ENV}=1 to fail instead of skipping)") from None


def requireMysql() -> str:
    """
    L{mysqlURL} for a test: when there is none, skip the test (raise
    L{SkipTest}), or fail it with L{ServiceUnavailable} if
    C{LIVECHAT_REQUIRE_SERVICES=1}.
    """
    return _require(mysqlURL)


def requireRedis() -> str:
    """
    L{redisURL} for a test: when there is none, skip the test (raise
    L{SkipTest}), or fail it with L{ServiceUnavailable} if
    C{LIVECHAT_REQUIRE_SERVICES=1}.
    """
    return _require(redisURL)


def describeServices() -> str:
    """One line naming the servers found so far and where they came from."""
    with _lock:
        parts = [
            f"{label} {maskURL(found.url)} ({found.origin})"
            for label, found in _found.items()
            if found.url is not None
        ]
    return ", ".join(parts) if parts else "no servers looked up yet"


def stopPrivateServers() -> None:
    """
    Stop the private servers that L{mysqlURL}/L{redisURL} started and forget
    all cached results.  (Also happens at process exit.)
    """
    with _lock:
        found = list(_found.values())
        _found.clear()
    for entry in found:
        if entry.server is not None:
            entry.server.stop()
