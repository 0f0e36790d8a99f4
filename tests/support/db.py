"""
Stores for tests, on both dialects, and the way to run one test body on both
(as Twisted's C{makeSQLTests}).

    class StoreTestsMixin(DialectMixin):
        def test_something(self): store = self.makeStore() ...

    globals().update(bothDialects(StoreTestsMixin, "StoreTests"))

gives C{SqliteStoreTests} (a temporary directory) and C{MysqlStoreTests} (a
real MariaDB from L{tests.support.services}; its databases carry a unique
prefix and are dropped after the test).
"""

from __future__ import annotations

import itertools
import os
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from livechat.storage import SqlStore
from tests.support import services

_counter = itertools.count(1)


def _dropDatabases(url: str, prefix: str) -> None:
    import pymysql

    parts = urlsplit(url)
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        connect_timeout=5,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                (prefix.replace("_", "\\_") + "%",),
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


class DialectMixin:
    """Set C{dialect} to C{"sqlite"} or C{"mysql"}; C{makeStore()} does the rest."""

    dialect = "sqlite"

    def databaseURL(self: Any) -> str:
        """A fresh, empty database URL of this test's dialect."""
        if self.dialect == "sqlite":
            directory = self.mktemp()
            os.makedirs(directory)
            return "sqlite:///" + os.path.abspath(directory).lstrip("/") + "/db_livechat.sqlite3"
        base = services.requireMysql()
        prefix = f"t{os.getpid()}_{next(_counter)}_"
        self.addCleanup(threads.deferToThread, _dropDatabases, base, prefix)
        sep = "&" if "?" in base else "?"
        return base.rstrip("/") + "/" + sep + "prefix=" + prefix

    def makeStore(self: Any, url: str | None = None, clock: Any = None) -> SqlStore:
        """A store on a fresh database (not yet opened), closed after the test."""
        store = SqlStore(url or self.databaseURL(), clock or reactor)
        self.addCleanup(store.close)
        return store

    @defer.inlineCallbacks
    def openStore(self: Any, url: str | None = None) -> Any:
        store = self.makeStore(url)
        yield store.open()
        return store


def bothDialects(mixin: type, name: str) -> dict[str, type]:
    """C{Sqlite<name>} and C{Mysql<name>} test cases from one mixin."""
    made = {}
    for dialect in ("sqlite", "mysql"):
        cls_name = f"{dialect.capitalize()}{name}"
        made[cls_name] = type(
            cls_name,
            (mixin, unittest.TestCase),
            {"dialect": dialect, "__module__": mixin.__module__},
        )
    return made
