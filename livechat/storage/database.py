"""
One wrapper around C{twisted.enterprise.adbapi} for both dialects.

The seed's layout: a global database C{db_livechat} (licences, operators, API
keys) and one database C{LC<licence>} per licence for its data.  On MariaDB
one connection pool serves all of them and table names are qualified
(C{`LC123456`.`chats`}); on sqlite every database is a file in one directory,
with one connection (and one thread) per file, opened on demand and closed
again when too many are open.

Code that touches the database is written as C{something_txn(txn, ...)}
functions that get a L{Txn}, hold plain SQL with C{?} placeholders and
C{{table}} tokens, and never touch the reactor.  They run through
L{Database.runGlobal} or L{Database.runLicence}; a transaction of one licence
can only name that licence's tables.
"""

from __future__ import annotations

import collections
import os
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from twisted.enterprise import adbapi
from twisted.internet import defer, task, threads
from twisted.logger import Logger

from livechat.model import databaseName
from livechat.storage.engines import Engine, MysqlEngine, SqliteEngine, substituteTokens

T = TypeVar("T")

GLOBAL = "global"
LICENCE = "licence"


CHECKPOINT_INTERVAL = 1.0
"""sqlite: seconds between the node's background checkpoints (L{Database.checkpoint})."""

WAL_AUTOCHECKPOINT = 20000
"""sqlite: pages (4 KiB) of write-ahead log past which a commit checkpoints by itself."""


class StorageError(Exception):
    """Storage cannot do what was asked (and retrying will not help)."""


class NoSuchLicenceDatabase(StorageError):
    """The licence's database does not exist."""


class Scope:
    """
    Which database a transaction runs in, and the qualified name of each of
    its tables.
    """

    def __init__(self, kind: str, licence: int | None, qualify: dict[str, str]) -> None:
        self.kind = kind
        self.licence = licence
        self.qualify = qualify
        self._cache: dict[str, str] = {}

    def prepare(self, sql: str, engine: Engine) -> str:
        prepared = self._cache.get(sql)
        if prepared is None:
            prepared = engine.convertPlaceholders(substituteTokens(sql, self.qualify))
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[sql] = prepared
        return prepared


class Txn:
    """
    What a C{*_txn} function is given: a cursor that knows its dialect and
    its database.  Runs in a database thread; must not touch the reactor.
    """

    def __init__(self, txn: adbapi.Transaction, engine: Engine, scope: Scope) -> None:
        self._txn = txn
        self.engine = engine
        self.scope = scope

    @property
    def dialect(self) -> str:
        return self.engine.name

    @property
    def licence(self) -> int | None:
        return self.scope.licence

    def table(self, name: str) -> str:
        """The qualified name of table C{name} in this scope."""
        return self.scope.qualify[name]

    def execute(self, sql: str, args: Sequence[Any] = ()) -> None:
        self._txn.execute(self.scope.prepare(sql, self.engine), tuple(args))

    def executeRaw(self, sql: str, args: Sequence[Any] = ()) -> None:
        """Run SQL without token substitution (DDL of migrations, pragmas)."""
        if args:
            self._txn.execute(self.engine.convertPlaceholders(sql), tuple(args))
        else:
            self._txn.execute(sql)

    def executeMany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of arguments (the driver's executemany)."""
        self._txn.executemany(self.scope.prepare(sql, self.engine), [tuple(r) for r in rows])

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.execute(sql, args)
        return list(self._txn.fetchall())

    def queryOne(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.execute(sql, args)
        row = self._txn.fetchone()
        return tuple(row) if row is not None else None

    def insert(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run an INSERT and return the new row's id."""
        self.execute(sql, args)
        return int(self._txn.lastrowid)

    def upsert(self, table: str, keys: dict[str, Any], values: dict[str, Any]) -> None:
        """Insert a row, or update C{values} where C{keys} exist already."""
        sql = self.engine.upsert(self.table(table), list(keys), list(values))
        self._txn.execute(
            self.engine.convertPlaceholders(sql), tuple(keys.values()) + tuple(values.values())
        )

    def begin(self) -> None:
        """
        Open the transaction now if it is not open yet.  sqlite's driver
        begins one only before a write, and a SAVEPOINT outside a
        transaction would become the transaction (its RELEASE a commit).
        """
        if self.engine.name == "sqlite":
            raw = self._txn._connection._connection
            if not raw.in_transaction:
                self._txn.execute("BEGIN")

    def savepoint(self, name: str) -> None:
        """Mark a point this transaction can roll back to (after L{begin})."""
        self._txn.execute(f"SAVEPOINT {name}")

    def releaseSavepoint(self, name: str) -> None:
        self._txn.execute(f"RELEASE SAVEPOINT {name}")

    def rollbackToSavepoint(self, name: str) -> None:
        """Undo what was done since the savepoint, and forget it."""
        self._txn.execute(f"ROLLBACK TO SAVEPOINT {name}")
        self._txn.execute(f"RELEASE SAVEPOINT {name}")

    def commitNow(self) -> None:
        """Commit what is done so far (MariaDB migrations, whose DDL commits anyway)."""
        self._txn._connection.commit()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._txn.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._txn.rowcount)


def _tablesOf(kind: str) -> tuple[str, ...]:
    from livechat.storage.migrations import tableNames

    return tableNames(kind)


class Database:
    """
    The pools of one database server (MariaDB) or directory (sqlite).

    @ivar engine: the dialect.
    """

    _log = Logger()

    def __init__(
        self,
        url: str,
        reactor: Any,
        *,
        maxOpenLicences: int = 64,
        retries: int = 5,
    ) -> None:
        self._reactor = reactor
        self._url = url
        self._retries = retries
        parts = urlsplit(url)
        self.engine: Engine
        self._licencePools: collections.OrderedDict[int, adbapi.ConnectionPool] = (
            collections.OrderedDict()
        )
        self._inflight: collections.Counter[int] = collections.Counter()
        self._maxOpen = maxOpenLicences
        self._scopes: dict[int, Scope] = {}
        self._closed = False
        self._checkpointing = False
        self._checkpointers: dict[str, Any] = {}
        if parts.scheme == "sqlite":
            self.engine = SqliteEngine()
            self.path = "/" + unquote(parts.path).lstrip("/")
            self.directory = os.path.dirname(self.path)
            self.globalName = os.path.basename(self.path)
            self._prefix = ""
            self._pool: adbapi.ConnectionPool | None = None
            self._globalScope = Scope(GLOBAL, None, {t: t for t in _tablesOf(GLOBAL)})
        elif parts.scheme in ("mysql", "mariadb"):
            self.engine = MysqlEngine()
            options = dict(parse_qsl(parts.query))
            self._prefix = options.get("prefix", "")
            path = unquote(parts.path.lstrip("/"))
            self.globalName = self._prefix + (path or "db_livechat")
            self._checkName(self.globalName)
            self._mysqlArgs = dict(
                host=parts.hostname,
                port=parts.port or 3306,
                user=unquote(parts.username or "root"),
                password=unquote(parts.password or ""),
                charset=options.get("charset", "utf8mb4"),
                connect_timeout=int(options.get("connect_timeout", "5")),
                read_timeout=60,
                write_timeout=60,
                autocommit=False,
            )
            self._pool = adbapi.ConnectionPool(
                "pymysql",
                cp_min=int(options.get("pool_min", "2")),
                cp_max=int(options.get("pool_max", "10")),
                cp_reconnect=True,
                cp_good_sql="SELECT 1",
                cp_noisy=False,
                cp_reactor=reactor,
                cp_openfun=self._openMysql,
                **self._mysqlArgs,
            )
            g = f"`{self.globalName}`"
            self._globalScope = Scope(GLOBAL, None, {t: f"{g}.`{t}`" for t in _tablesOf(GLOBAL)})
        else:
            raise StorageError(f"unsupported database URL {url!r}")

    # -- naming ---------------------------------------------------------------

    @staticmethod
    def _checkName(name: str) -> None:
        if not name or not all(c.isalnum() or c == "_" for c in name) or len(name) > 64:
            raise StorageError(f"bad database name {name!r}: letters, digits and _ only")

    def licenceDatabaseName(self, licence: int) -> str:
        """C{LC<licence>}, with the URL's prefix on MariaDB."""
        return self._prefix + databaseName(licence)

    def describe(self) -> str:
        """Where the data lives, for the log (no password)."""
        if self.engine.name == "sqlite":
            return f"sqlite in {self.directory}"
        a = self._mysqlArgs
        return f"MariaDB {a['user']}@{a['host']}:{a['port']}/{self.globalName}"

    @property
    def appendBatching(self) -> tuple[int, int]:
        """
        How a licence's chat appends are grouped (L{AppendBatcher}): the
        largest batch, and how many batches may run at once.  One at a time
        on both engines: two transactions of appends running together could
        store two appends of one chat in the other order than they were
        asked (a client that sends twice without waiting must see its order
        kept).  MariaDB's batches are smaller, as every statement there is a
        round trip and a batch holds its chats' row locks until it commits.
        """
        if self.engine.name == "sqlite":
            return 256, 1
        return 64, 1

    def _licenceScope(self, licence: int) -> Scope:
        scope = self._scopes.get(licence)
        if scope is None:
            if self.engine.name == "sqlite":
                qualify = {t: t for t in _tablesOf(LICENCE)}
            else:
                d = f"`{self.licenceDatabaseName(licence)}`"
                qualify = {t: f"{d}.`{t}`" for t in _tablesOf(LICENCE)}
            scope = self._scopes[licence] = Scope(LICENCE, licence, qualify)
        return scope

    # -- connections ------------------------------------------------------------

    @staticmethod
    def _openMysql(conn: Any) -> None:
        cursor = conn.cursor()
        cursor.execute("SET SESSION time_zone = '+00:00'")
        cursor.close()

    @staticmethod
    def _openSqlite(conn: Any) -> None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        # A commit that fills the write-ahead log past this copies it into
        # the database (and syncs) before it returns: with the default
        # (1,000 pages) every few seconds of chat, tens of ms on a message's
        # path.  L{checkpoint} does it on another connection in the
        # background; this is only the bound when nothing calls it.
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
        # Temporary files in memory: a batch of appends runs in a savepoint,
        # and sqlite keeps the statement journal of a savepoint in a file it
        # creates, writes a page at a time and deletes, per batch.
        conn.execute("PRAGMA temp_store = MEMORY")

    def checkpoint(self) -> defer.Deferred[None]:
        """
        sqlite: copy each open database's write-ahead log into it (a
        passive checkpoint: it waits for no writer), on connections of its
        own in the reactor's thread pool, so the append path never pays for
        it.  The node calls this every L{CHECKPOINT_INTERVAL} seconds.
        Nothing to do on MariaDB.
        """
        if self.engine.name != "sqlite" or self._closed or self._checkpointing:
            return defer.succeed(None)
        paths = [self.path] + [self._sqliteLicencePath(n) for n in self._licencePools]
        self._checkpointing = True

        def done(result: Any) -> Any:
            self._checkpointing = False
            if self._closed:  # closed meanwhile: its connections go now
                for conn in self._checkpointers.values():
                    conn.close()
                self._checkpointers.clear()
            return result

        d = threads.deferToThreadPool(
            self._reactor, self._reactor.getThreadPool(), self._checkpointFiles, paths
        )
        return d.addBoth(done)

    def _checkpointFiles(self, paths: list[str]) -> None:
        # In a pool thread, one call at a time: the connections are its own.
        import sqlite3

        wanted = set(paths)
        for path in list(self._checkpointers):
            if path not in wanted:
                self._checkpointers.pop(path).close()
        for path in paths:
            conn = self._checkpointers.get(path)
            if conn is None:
                if not os.path.exists(path):
                    continue
                conn = sqlite3.connect(
                    f"file:{quote(path)}?mode=rw", uri=True, timeout=0, check_same_thread=False
                )
                self._checkpointers[path] = conn
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as e:
                self._log.warn("checkpoint of {path}: {error}", path=path, error=e)

    def _sqlitePool(self, path: str, create: bool) -> adbapi.ConnectionPool:
        mode = "rwc" if create else "rw"
        return adbapi.ConnectionPool(
            "sqlite3",
            f"file:{quote(path)}?mode={mode}",
            uri=True,
            check_same_thread=False,
            cp_min=1,
            cp_max=1,
            cp_reactor=self._reactor,
            cp_openfun=self._openSqlite,
            cp_noisy=False,
        )

    def _sqliteLicencePath(self, licence: int) -> str:
        return os.path.join(self.directory, databaseName(licence) + ".sqlite3")

    def _globalPool(self) -> adbapi.ConnectionPool:
        if self._closed:
            raise StorageError("the database is closed")
        if self._pool is None:
            self._pool = self._sqlitePool(self.path, create=True)
        return self._pool

    def _poolForLicence(self, licence: int, create: bool = False) -> adbapi.ConnectionPool:
        if self.engine.name != "sqlite":
            return self._globalPool()
        if self._closed:
            raise StorageError("the database is closed")
        pool = self._licencePools.get(licence)
        if pool is not None:
            self._licencePools.move_to_end(licence)
            return pool
        pool = self._sqlitePool(self._sqliteLicencePath(licence), create)
        self._licencePools[licence] = pool
        self._closeIdlePools()
        return pool

    def _closeIdlePools(self) -> None:
        """Close the least recently used sqlite files beyond C{maxOpenLicences}."""
        excess = len(self._licencePools) - self._maxOpen
        for licence in list(self._licencePools):
            if excess <= 0:
                break
            if self._inflight[licence]:
                continue
            self._licencePools.pop(licence).close()
            excess -= 1

    # -- running transactions ---------------------------------------------------

    def runGlobal(
        self, desc: str, func: Callable[..., T], *args: Any, **kw: Any
    ) -> defer.Deferred[T]:
        """Run C{func(txn, *args, **kw)} in a transaction on the global database."""
        return defer.ensureDeferred(self._run(None, desc, func, self._globalScope, args, kw))

    def runLicence(
        self, licence: int, desc: str, func: Callable[..., T], *args: Any, **kw: Any
    ) -> defer.Deferred[T]:
        """
        Run C{func(txn, *args, **kw)} in a transaction on the database of
        C{licence}; the transaction can only name that licence's tables.

        @raise NoSuchLicenceDatabase: (in the Deferred) when it does not exist.
        """
        return defer.ensureDeferred(
            self._run(licence, desc, func, self._licenceScope(licence), args, kw)
        )

    async def _run(
        self,
        licence: int | None,
        desc: str,
        func: Callable[..., T],
        scope: Scope,
        args: Sequence[Any],
        kw: dict[str, Any],
        retries: int | None = None,
    ) -> T:
        retries = self._retries if retries is None else retries
        attempt = 0
        while True:
            if licence is None:
                pool = self._globalPool()
            else:
                pool = self._poolForLicence(licence)
                self._inflight[licence] += 1
            try:
                return await pool.runInteraction(self._interaction, func, scope, args, kw)
            except Exception as e:
                if licence is not None and self.engine.isMissingDatabase(e):
                    self._forget(licence)
                    raise NoSuchLicenceDatabase(f"licence {licence} has no database") from e
                if attempt >= retries or not self.engine.isRetryable(e):
                    raise
                attempt += 1
                delay = min(0.05 * 2**attempt, 2.0) * (0.5 + random.random())
                self._log.warn(
                    "{desc}: {error!r}; retry {attempt} in {delay:.2f}s",
                    desc=desc,
                    error=e,
                    attempt=attempt,
                    delay=delay,
                )
                await task.deferLater(self._reactor, delay)
            finally:
                if licence is not None:
                    self._inflight[licence] -= 1
                    if not self._inflight[licence]:
                        del self._inflight[licence]

    def _interaction(
        self,
        adbTxn: adbapi.Transaction,
        func: Callable[..., T],
        scope: Scope,
        args: Sequence[Any],
        kw: dict[str, Any],
    ) -> T:
        return func(Txn(adbTxn, self.engine, scope), *args, **kw)

    def _forget(self, licence: int) -> None:
        pool = self._licencePools.pop(licence, None)
        if pool is not None:
            pool.close()
        self._scopes.pop(licence, None)

    # -- databases --------------------------------------------------------------

    async def start(self) -> None:
        """Create the global database when it is missing (MariaDB)."""
        if self.engine.name == "mysql":
            await self._runServer("create global database", _createDatabase_txn, self.globalName)
        else:
            await threads.deferToThreadPool(
                self._reactor,
                self._reactor.getThreadPool(),
                os.makedirs,
                self.directory,
                exist_ok=True,
            )

    def _runServer(self, desc: str, func: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        """Run C{func} with no database selected (MariaDB server-level DDL)."""
        return defer.ensureDeferred(self._run(None, desc, func, Scope(GLOBAL, None, {}), args, {}))

    async def createLicenceDatabase(self, licence: int) -> None:
        """Create the (empty) database of C{licence}; no error if it exists."""
        if self.engine.name == "mysql":
            await self._runServer(
                "create licence database",
                _createDatabase_txn,
                self.licenceDatabaseName(licence),
            )
        else:
            self._forget(licence)
            pool = self._poolForLicence(licence, create=True)
            self._inflight[licence] += 1
            try:
                await pool.runInteraction(lambda txn: None)
            finally:
                self._inflight[licence] -= 1
            # Later opens of the file must not create it.
            self._forget(licence)

    async def dropLicenceDatabase(self, licence: int) -> None:
        """Remove all data of C{licence}: drop its database (or delete its file)."""
        if self.engine.name == "mysql":
            await self._runServer(
                "drop licence database", _dropDatabase_txn, self.licenceDatabaseName(licence)
            )
        else:
            self._forget(licence)
            path = self._sqliteLicencePath(licence)
            await threads.deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), _removeSqliteFiles, path
            )

    async def licenceDatabaseExists(self, licence: int) -> bool:
        if self.engine.name == "mysql":
            return await self._runServer(
                "licence database exists",
                _databaseExists_txn,
                self.licenceDatabaseName(licence),
            )
        return await threads.deferToThreadPool(
            self._reactor,
            self._reactor.getThreadPool(),
            os.path.exists,
            self._sqliteLicencePath(licence),
        )

    async def ping(self) -> None:
        """
        Fail unless the global database answers a query.  Retries only as
        often as it takes to get past connections the server closed.
        """
        await self._run(None, "ping", _ping_txn, self._globalScope, (), {}, retries=3)

    def close(self) -> None:
        """Close every pool.  Call at shutdown; waits for idle threads only."""
        self._closed = True
        if not self._checkpointing:
            for conn in self._checkpointers.values():
                conn.close()
            self._checkpointers.clear()
        for licence in list(self._licencePools):
            self._licencePools.pop(licence).close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _ping_txn(txn: Txn) -> None:
    txn.executeRaw("SELECT 1")
    txn.fetchall()


def _createDatabase_txn(txn: Txn, name: str) -> None:
    Database._checkName(name)
    txn.executeRaw(
        f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )


def _dropDatabase_txn(txn: Txn, name: str) -> None:
    Database._checkName(name)
    txn.executeRaw(f"DROP DATABASE IF EXISTS `{name}`")


def _databaseExists_txn(txn: Txn, name: str) -> bool:
    txn.executeRaw(
        "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", (name,)
    )
    rows = txn.fetchall()
    return bool(rows and rows[0][0])


def _removeSqliteFiles(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
