"""
The reports of the control panel, over a licence's C{chats} and
C{chat_events} (run through L{livechat.storage.database.Database.runLicence};
the same SQL on sqlite and MariaDB).

Only visitor chats count.  A chat is I{missed} when it was closed without an
operator ever accepting it; its I{first response} is the time from its
creation to the first message an operator wrote in it.

The SQL groups by quarter hours of UTC (C{created_at - created_at % 900000});
L{foldDays} then adds the quarters up into the calendar days of any time zone
(every zone's offset is a whole number of quarter hours), so days follow
daylight saving time without dialect-specific date functions.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterable

from livechat.model import Chat
from livechat.storage.chats import CHAT_COLUMNS, chatFromRow
from livechat.storage.database import Txn

QUARTER = 15 * 60 * 1000
"""The SQL's bucket, in milliseconds."""

RESPONSE_CLASSES = (30_000, 60_000, 120_000, 300_000, 600_000)
"""Upper bounds (ms, exclusive) of the first-response classes; a last class takes the rest."""

_OPERATOR_LIKE = "op:%"


def chatBuckets_txn(txn: Txn, since: int, until: int) -> list[tuple[int, int, int, int]]:
    """
    C{(quarter start, chats, missed, accepted)} of the visitor chats created
    in C{[since, until)} (ms), per quarter hour that has any.
    """
    rows = txn.query(
        "SELECT created_at - (created_at % ?) AS q, COUNT(*), "
        "SUM(CASE WHEN status = 'closed' AND accepted_at IS NULL THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN accepted_at IS NOT NULL THEN 1 ELSE 0 END) "
        "FROM {chats} WHERE kind = 'visitor' AND created_at >= ? AND created_at < ? "
        "GROUP BY q ORDER BY q",
        (QUARTER, since, until),
    )
    return [(int(r[0]), int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in rows]


def firstResponseBuckets_txn(txn: Txn, since: int, until: int) -> list[tuple[int, ...]]:
    """
    C{(quarter start, answered chats, summed wait ms, count per class...)}
    of the visitor chats created in C{[since, until)} that an operator wrote
    in; one count per bound of L{RESPONSE_CLASSES} and one for the rest.
    """
    classes = []
    low = None
    for bound in RESPONSE_CLASSES:
        if low is None:
            classes.append(f"SUM(CASE WHEN r.wait < {bound} THEN 1 ELSE 0 END)")
        else:
            classes.append(f"SUM(CASE WHEN r.wait >= {low} AND r.wait < {bound} THEN 1 ELSE 0 END)")
        low = bound
    classes.append(f"SUM(CASE WHEN r.wait >= {low} THEN 1 ELSE 0 END)")
    rows = txn.query(
        f"SELECT r.q, COUNT(*), SUM(r.wait), {', '.join(classes)} FROM ("
        "SELECT c.created_at - (c.created_at % ?) AS q, MIN(e.created_at) - c.created_at AS wait "
        "FROM {chats} c JOIN {chat_events} e ON e.chat_id = c.id "
        "WHERE c.kind = 'visitor' AND c.created_at >= ? AND c.created_at < ? "
        "AND e.type = 'ContentEvent' AND e.originator LIKE ? "
        "GROUP BY c.id, c.created_at) r GROUP BY r.q ORDER BY r.q",
        (QUARTER, since, until, _OPERATOR_LIKE),
    )
    return [tuple(int(v or 0) for v in r) for r in rows]


def missedChats_txn(txn: Txn, since: int, until: int, limit: int) -> list[Chat]:
    """The latest C{limit} missed visitor chats created in C{[since, until)}, newest first."""
    rows = txn.query(
        f"SELECT {CHAT_COLUMNS} FROM {{chats}} WHERE kind = 'visitor' AND status = 'closed' "
        "AND accepted_at IS NULL AND created_at >= ? AND created_at < ? ORDER BY id DESC LIMIT ?",
        (since, until, limit),
    )
    return [chatFromRow(txn.licence or 0, r) for r in rows]


def operatorLoad_txn(txn: Txn, since: int, until: int) -> dict[int, dict[str, int]]:
    """
    Per operator id, of the visitor chats created in C{[since, until)}:
    C{chats} assigned to them (at the end), C{closed} of those with an
    acceptance and a close, C{talkMS} summed from acceptance to close, and
    C{messages} they wrote (in any of those chats).
    """
    load: dict[int, dict[str, int]] = {}

    def entry(operator: int) -> dict[str, int]:
        return load.setdefault(operator, {"chats": 0, "closed": 0, "talkMS": 0, "messages": 0})

    for operator, chats, closed, talk in txn.query(
        "SELECT operator, COUNT(*), "
        "SUM(CASE WHEN closed_at IS NOT NULL AND accepted_at IS NOT NULL THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN closed_at IS NOT NULL AND accepted_at IS NOT NULL "
        "THEN closed_at - accepted_at ELSE 0 END) "
        "FROM {chats} WHERE kind = 'visitor' AND operator IS NOT NULL "
        "AND created_at >= ? AND created_at < ? GROUP BY operator",
        (since, until),
    ):
        e = entry(int(operator))
        e["chats"], e["closed"], e["talkMS"] = int(chats), int(closed or 0), int(talk or 0)
    for originator, count in txn.query(
        "SELECT e.originator, COUNT(*) FROM {chat_events} e JOIN {chats} c ON c.id = e.chat_id "
        "WHERE c.kind = 'visitor' AND c.created_at >= ? AND c.created_at < ? "
        "AND e.type = 'ContentEvent' AND e.originator LIKE ? GROUP BY e.originator",
        (since, until, _OPERATOR_LIKE),
    ):
        ref = str(originator)[3:]
        if ref.isdigit():
            entry(int(ref))["messages"] += int(count)
    return load


# -- days ---------------------------------------------------------------------------------


def dayRange(zone: zoneinfo.ZoneInfo, first: datetime.date, last: datetime.date) -> tuple[int, int]:
    """C{[since, until)} in ms: local midnight of C{first} to that after C{last}."""
    start = datetime.datetime.combine(first, datetime.time(0, 0), zone)
    end = datetime.datetime.combine(last + datetime.timedelta(days=1), datetime.time(0, 0), zone)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def localDate(ms: int, zone: zoneinfo.ZoneInfo) -> datetime.date:
    return datetime.datetime.fromtimestamp(ms / 1000, zone).date()


def foldDays(
    rows: Iterable[tuple[int, ...]],
    zone: zoneinfo.ZoneInfo,
    first: datetime.date,
    last: datetime.date,
    width: int,
) -> list[tuple[datetime.date, list[int]]]:
    """
    Add the per-quarter C{rows} (quarter start, then C{width} numbers) up
    into every local day from C{first} to C{last} (days without rows get zeros).
    """
    days: dict[datetime.date, list[int]] = {}
    for row in rows:
        quarter, values = row[0], row[1:]
        day = localDate(quarter, zone)
        sums = days.setdefault(day, [0] * width)
        for i, v in enumerate(values):
            sums[i] += v
    out = []
    day = first
    while day <= last:
        out.append((day, days.get(day, [0] * width)))
        day += datetime.timedelta(days=1)
    return out
