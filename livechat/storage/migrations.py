"""
Numbered schema migrations ("deltas"), with per-dialect variants, applied on
start and recorded in each database's C{schema_version} table.

Deltas live in C{livechat/storage/schema/<kind>/} where C{kind} is C{global}
(the seed's C{db_livechat}) or C{licence} (each C{LC<licence>}).  A delta is
C{NNN_name.sql} for both dialects, or C{NNN_name.sqlite.sql} and
C{NNN_name.mysql.sql}.  Statements end with C{;} at the end of a line;
C{{table}} tokens name the tables (and define which tables each kind has).

Running the migrations twice is safe: applied deltas are skipped, and the
DDL is written with C{IF NOT EXISTS}.  On sqlite all pending deltas apply in
one transaction; on MariaDB (where DDL commits by itself) a named lock keeps
two nodes from migrating the same database at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources

import attr

from livechat.storage.database import GLOBAL, LICENCE, Txn

_NAME = re.compile(
    r"^(?P<version>\d{3})_(?P<name>[a-z0-9_]+?)(?:\.(?P<dialect>sqlite|mysql))?\.sql$"
)
_TOKEN = re.compile(r"\{([a-z_][a-z0-9_]*)\}")

DIALECTS = ("sqlite", "mysql")


@attr.s(frozen=True, auto_attribs=True)
class Delta:
    version: int
    name: str
    statements: tuple[str, ...]


def _split(text: str) -> tuple[str, ...]:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    body = "\n".join(lines)
    return tuple(s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip())


def _load(kind: str) -> dict[str, list[Delta]]:
    """Read the delta files of C{kind}: C{{dialect: [Delta, ...]}} in order."""
    folder = resources.files("livechat.storage").joinpath("schema", kind)
    common: dict[int, tuple[str, str]] = {}
    specific: dict[tuple[int, str], tuple[str, str]] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise ValueError(f"bad delta file name {kind}/{entry.name}")
            continue
        version = int(match.group("version"))
        text = entry.read_text(encoding="utf-8")
        dialect = match.group("dialect")
        if dialect is None:
            common[version] = (match.group("name"), text)
        else:
            specific[(version, dialect)] = (match.group("name"), text)
    result: dict[str, list[Delta]] = {}
    versions = sorted(set(common) | {v for v, _ in specific})
    for dialect in DIALECTS:
        deltas = []
        for version in versions:
            chosen = specific.get((version, dialect)) or common.get(version)
            if chosen is None:
                raise ValueError(f"delta {kind}/{version:03d} has no {dialect} variant")
            deltas.append(Delta(version, chosen[0], _split(chosen[1])))
        result[dialect] = deltas
    return result


_DELTAS: dict[str, dict[str, list[Delta]]] = {kind: _load(kind) for kind in (GLOBAL, LICENCE)}


def deltas(kind: str, dialect: str) -> list[Delta]:
    return _DELTAS[kind][dialect]


def tableNames(kind: str) -> tuple[str, ...]:
    """Every table the deltas of C{kind} name, plus C{schema_version}."""
    names = {"schema_version"}
    for dialect in DIALECTS:
        for delta in _DELTAS[kind][dialect]:
            for statement in delta.statements:
                names.update(_TOKEN.findall(statement))
    return tuple(sorted(names))


def latestVersion(kind: str) -> int:
    found = deltas(kind, "sqlite")
    return found[-1].version if found else 0


_VERSION_TABLE = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS {schema_version} ("
        " version INTEGER NOT NULL PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " applied_at INTEGER NOT NULL)"
    ),
    "mysql": (
        "CREATE TABLE IF NOT EXISTS {schema_version} ("
        " version INT NOT NULL PRIMARY KEY,"
        " name VARCHAR(100) NOT NULL,"
        " applied_at BIGINT NOT NULL"
        ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
    ),
}


def migrate_txn(txn: Txn, kind: str, nowMS: int) -> list[int]:
    """
    Apply the deltas of C{kind} that this database lacks.

    @return: the versions applied now (empty when it was up to date).
    """
    dialect = txn.dialect
    lock = None
    if dialect == "sqlite":
        # DDL is transactional in sqlite: take the write lock for all of it.
        txn.executeRaw("BEGIN IMMEDIATE")
    else:
        lock = "livechat.migrate." + txn.table("schema_version").split(".")[0].strip("`")
        txn.executeRaw("SELECT GET_LOCK(?, 60)", (lock,))
        rows = txn.fetchall()
        if not rows or rows[0][0] != 1:
            raise RuntimeError(f"could not take the migration lock {lock}")
    try:
        txn.execute(_VERSION_TABLE[dialect])
        if dialect == "mysql":
            txn.commitNow()
        applied = {row[0] for row in txn.query("SELECT version FROM {schema_version}")}
        done = []
        for delta in deltas(kind, dialect):
            if delta.version in applied:
                continue
            for statement in delta.statements:
                txn.execute(statement)
            txn.execute(
                "INSERT INTO {schema_version} (version, name, applied_at) VALUES (?, ?, ?)",
                (delta.version, delta.name, nowMS),
            )
            if dialect == "mysql":
                txn.commitNow()
            done.append(delta.version)
        return done
    finally:
        if lock is not None:
            txn.executeRaw("SELECT RELEASE_LOCK(?)", (lock,))
            txn.fetchall()


def appliedVersions_txn(txn: Txn) -> list[int]:
    return [row[0] for row in txn.query("SELECT version FROM {schema_version} ORDER BY version")]


def allKinds() -> Iterable[str]:
    return (GLOBAL, LICENCE)
