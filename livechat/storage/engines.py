"""
The differences between the SQL dialects, in one class per dialect.

Everything else in the storage package writes SQL once, with C{?}
placeholders and C{{table}} tokens; the engine turns that into what its
driver wants and says which errors are worth a retry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_TOKEN = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class Engine:
    """Base of the dialect classes."""

    name = ""
    module = ""
    """Name of the DB-API module, as adbapi wants it."""

    forUpdate = ""
    """Appended to a SELECT that must lock the rows it reads."""

    forShare = ""
    """Appended to a SELECT whose rows must not change or go until the commit."""

    def convertPlaceholders(self, sql: str) -> str:
        return sql

    def isRetryable(self, error: BaseException) -> bool:
        """Whether running the same transaction again may succeed."""
        return False

    def isConnectionError(self, error: BaseException) -> bool:
        """Whether C{error} says the server cannot be reached at all."""
        return False

    def isIntegrityError(self, error: BaseException) -> bool:
        return False

    def isMissingDatabase(self, error: BaseException) -> bool:
        """Whether C{error} says the database (or its tables) does not exist."""
        return False

    def upsert(self, table: str, keys: Sequence[str], values: Sequence[str]) -> str:
        """SQL inserting C{keys + values} columns, updating C{values} on conflict."""
        raise NotImplementedError()


class SqliteEngine(Engine):
    name = "sqlite"
    module = "sqlite3"

    def isRetryable(self, error: BaseException) -> bool:
        import sqlite3

        return isinstance(error, sqlite3.OperationalError) and (
            "locked" in str(error) or "busy" in str(error)
        )

    def isIntegrityError(self, error: BaseException) -> bool:
        import sqlite3

        return isinstance(error, sqlite3.IntegrityError)

    def isMissingDatabase(self, error: BaseException) -> bool:
        import sqlite3

        return isinstance(error, sqlite3.OperationalError) and (
            "unable to open database" in str(error)
        )

    def upsert(self, table: str, keys: Sequence[str], values: Sequence[str]) -> str:
        columns = list(keys) + list(values)
        marks = ", ".join("?" for _ in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in values)
        conflict = f"DO UPDATE SET {updates}" if values else "DO NOTHING"
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(keys)}) {conflict}"
        )


# MariaDB/MySQL error numbers worth a retry (Buildbot's enginestrategy lists
# the same): the connection went away or was lost, a deadlock, a lock wait.
MYSQL_GONE_AWAY = 2006
MYSQL_LOST = 2013
MYSQL_CANT_CONNECT = 2003
MYSQL_DEADLOCK = 1213
MYSQL_LOCK_WAIT = 1205
MYSQL_SERVER_SHUTDOWN = 1053
_MYSQL_RETRY = {
    MYSQL_GONE_AWAY,
    MYSQL_LOST,
    MYSQL_CANT_CONNECT,
    MYSQL_DEADLOCK,
    MYSQL_LOCK_WAIT,
    MYSQL_SERVER_SHUTDOWN,
}
_MYSQL_CONNECTION = {MYSQL_GONE_AWAY, MYSQL_LOST, MYSQL_CANT_CONNECT, MYSQL_SERVER_SHUTDOWN}


def mysqlErrorCode(error: BaseException) -> int | None:
    args: Any = getattr(error, "args", ())
    if args and isinstance(args[0], int):
        return args[0]
    return None


class MysqlEngine(Engine):
    name = "mysql"
    module = "pymysql"
    forUpdate = " FOR UPDATE"
    forShare = " LOCK IN SHARE MODE"

    def convertPlaceholders(self, sql: str) -> str:
        # pymysql formats with %, so a literal % must be doubled first.
        return sql.replace("%", "%%").replace("?", "%s")

    def isRetryable(self, error: BaseException) -> bool:
        import pymysql

        if isinstance(error, (pymysql.err.InterfaceError,)):
            return True  # "(0, '')": the socket was already closed
        if isinstance(error, pymysql.err.OperationalError):
            return mysqlErrorCode(error) in _MYSQL_RETRY
        if isinstance(error, ConnectionError):
            return True
        from twisted.enterprise.adbapi import ConnectionLost

        return isinstance(error, ConnectionLost)

    def isConnectionError(self, error: BaseException) -> bool:
        import pymysql

        if isinstance(error, pymysql.err.OperationalError):
            return mysqlErrorCode(error) in _MYSQL_CONNECTION
        from twisted.enterprise.adbapi import ConnectionLost

        return isinstance(error, (pymysql.err.InterfaceError, ConnectionLost, ConnectionError))

    def isIntegrityError(self, error: BaseException) -> bool:
        import pymysql

        return isinstance(error, pymysql.err.IntegrityError)

    def isMissingDatabase(self, error: BaseException) -> bool:
        # 1049: unknown database; 1146: table doesn't exist.
        return mysqlErrorCode(error) in (1049, 1146)

    def upsert(self, table: str, keys: Sequence[str], values: Sequence[str]) -> str:
        columns = list(keys) + list(values)
        marks = ", ".join("?" for _ in columns)
        if values:
            updates = ", ".join(f"{c} = VALUES({c})" for c in values)
        else:
            updates = f"{keys[0]} = {keys[0]}"
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON DUPLICATE KEY UPDATE {updates}"
        )


def substituteTokens(sql: str, qualify: dict[str, str]) -> str:
    """
    Replace every C{{name}} in C{sql} by C{qualify[name]}.

    @raise KeyError: a token names a table this scope may not touch; that is
        how a licence's transaction is kept away from other databases.
    """

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        try:
            return qualify[name]
        except KeyError:
            raise KeyError(f"table {name!r} is not part of this database") from None

    return _TOKEN.sub(sub, sql)
