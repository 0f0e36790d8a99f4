"""
``livechat-admin``: manage licences and operators from the shell, with the
same configuration (and so the same database) as the server.

    livechat-admin create-licence --seats-cc 5 --admin-nick anna --admin-email anna@example.com
    livechat-admin create-operator 123456 bob --email bob@example.com
    livechat-admin set-password 123456 bob
    livechat-admin list-licences
    livechat-admin list-operators 123456

Passwords are generated and printed once, or read from standard input with
``--password-stdin``.  Errors go to standard error with exit status 1;
wrong usage exits with 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from twisted.internet import defer, task

from livechat import webadmin
from livechat.auth import PasswordHasher, generatePassword
from livechat.config import KEYS, ConfigError, loadConfig
from livechat.licencefile import LANGUAGES, parseDate
from livechat.model import AccountType, Licence, LicenceType, Operator
from livechat.storage import Conflict, NotFound, SeatsExhausted, SqlStore
from livechat.storage.accounts import formatTime

MIN_PASSWORD = 8


class AdminError(Exception):
    """A failure to report to the user, without a traceback."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="livechat-admin",
        description="Manage livechat licences and operators.",
    )
    p.add_argument("-c", "--config", help="lc_serv.cfg to read (default: ./lc_serv.cfg if present)")
    p.add_argument("-d", "--data-dir", help="data directory (DATA_DIR)")
    p.add_argument("--database", help="database URL (DATABASE)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="set any configuration key"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="command")

    c = sub.add_parser("create-licence", help="create a licence (and its first operator)")
    c.add_argument("--number", type=int, default=0, help="licence number (default: random)")
    c.add_argument(
        "--type", type=int, choices=[1, 9], default=1, help="1 ASP-FULL (default) or 9 ASP-DEMO"
    )
    c.add_argument("--name", default="", help="company name")
    c.add_argument("--expires", help="expiry, YYYY-MM-DD [HH:MM:SS] UTC (default: never)")
    c.add_argument("--seats-cc", type=int, help="contact-center seats (default: unlimited)")
    c.add_argument("--seats-com", type=int, help="communicator seats (default: unlimited)")
    c.add_argument("--language", choices=LANGUAGES, default="en")
    c.add_argument("--max-chats", type=int, help="parallel chats per operator (licence default)")
    c.add_argument("--web-page", default="")
    c.add_argument("--admin-nick", help="also create this first operator (an administrator)")
    c.add_argument("--admin-email", help="the first operator's e-mail (LIVECHAT ID)")
    c.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the first operator's password from standard input",
    )

    o = sub.add_parser("create-operator", help="add an operator to a licence")
    o.add_argument("licence", type=int)
    o.add_argument("nick")
    o.add_argument("--email", required=True, help="e-mail, the operator's LIVECHAT ID")
    o.add_argument("--first-name", default="")
    o.add_argument("--last-name", default="")
    o.add_argument("--phone", default="")
    o.add_argument(
        "--account-type",
        choices=[t.value for t in AccountType],
        default=AccountType.CONTACT_CENTER.value,
    )
    o.add_argument("--max-chats", type=int, help="parallel chats (default: the licence's)")
    o.add_argument("--admin", action="store_true", help="may use the control panel")
    o.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    s = sub.add_parser("set-password", help="set an operator's password")
    s.add_argument("licence", type=int)
    s.add_argument("nick")
    s.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )

    k = sub.add_parser("create-api-key", help="make an API key for a licence (shown once)")
    k.add_argument("licence", type=int)
    k.add_argument("--name", default="", help="what the key is for")
    k.add_argument(
        "--scope",
        action="append",
        default=[],
        required=True,
        help="what it may do, e.g. control (repeatable)",
    )
    lk = sub.add_parser("list-api-keys", help="list a licence's API keys (not the secrets)")
    lk.add_argument("licence", type=int)
    rk = sub.add_parser("revoke-api-key", help="revoke an API key")
    rk.add_argument("licence", type=int)
    rk.add_argument("key_id")

    ld = sub.add_parser("list-deliveries", help="list a licence's webhook deliveries")
    ld.add_argument("licence", type=int)
    ld.add_argument("--state", choices=["pending", "delivered", "dead"], help="only these")
    ld.add_argument("--limit", type=int, default=100)
    rd = sub.add_parser("replay-deliveries", help="send dead webhook deliveries again")
    rd.add_argument("licence", type=int)
    rd.add_argument("--id", type=int, help="only this delivery (dead or delivered)")
    rd.add_argument("--endpoint", help="only this endpoint (cfg:EVENT, hook:ID, app:ID)")
    sub.add_parser("webhook-secret", help="print the secret that signs the EVENT_* requests")

    sub.add_parser("list-licences", help="list the licences")
    lo = sub.add_parser("list-operators", help="list the operators of a licence")
    lo.add_argument("licence", type=int)
    webadmin.addCommands(sub)
    return p


def _readPassword(stdin: TextIO) -> str:
    password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"the password must have at least {MIN_PASSWORD} characters")
    return password


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() + "\n")


def _checkEmail(email: str) -> None:
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise AdminError(f"{email!r} is not an e-mail address")


def _checkNonNegative(name: str, value: int | None) -> None:
    if value is not None and value < 0:
        raise AdminError(f"{name} cannot be negative")


async def run(
    reactor: Any,
    argv: Sequence[str],
    out: TextIO,
    err: TextIO,
    stdin: TextIO,
    hasher: PasswordHasher | None = None,
) -> int:
    """Run one command; return the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    overrides: dict[str, str] = {}
    for assignment in args.set:
        key, sep, value = assignment.partition("=")
        if not sep or key.upper() not in KEYS:
            err.write(
                f"livechat-admin: error: --set {assignment!r}: "
                "expected KEY=VALUE with a known key\n"
            )
            return 2
        overrides[key.upper()] = value
    if args.data_dir:
        overrides["DATA_DIR"] = args.data_dir
    if args.database:
        overrides["DATABASE"] = args.database
    import os

    path = args.config or ("lc_serv.cfg" if os.path.exists("lc_serv.cfg") else None)
    try:
        config = loadConfig(path, overrides)
    except ConfigError as e:
        err.write(f"livechat-admin: error: {e}\n")
        return 1
    if hasher is None:
        hasher = PasswordHasher.forReactor(reactor)
    store = SqlStore(config.databaseURL, reactor)
    try:
        await store.open()
        await _COMMANDS[args.command](store, hasher, args, out, stdin)
        return 0
    except (AdminError, Conflict, NotFound, SeatsExhausted) as e:
        err.write(f"livechat-admin: error: {e}\n")
        return 1
    except Exception as e:
        err.write(f"livechat-admin: error: {type(e).__name__}: {e}\n")
        return 1
    finally:
        await store.close()


async def _createLicence(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    for name in ("seats_cc", "seats_com", "max_chats"):
        _checkNonNegative("--" + name.replace("_", "-"), getattr(args, name))
    if args.number and not 1 <= args.number <= 2**31 - 1:
        raise AdminError("--number must be between 1 and 2147483647")
    expires = None
    if args.expires:
        try:
            expires = parseDate(args.expires)
        except ValueError as e:
            raise AdminError(f"--expires: {e}") from None
    licence = Licence(
        number=args.number,
        lic_type=LicenceType(args.type),
        name=args.name,
        language=args.language,
        expires_at=expires,
        seats_cc=args.seats_cc,
        seats_com=args.seats_com,
        max_chats_default=args.max_chats,
        web_page=args.web_page,
    )
    operator = None
    password = passwordHash = None
    if args.admin_nick or args.admin_email:
        if not (args.admin_nick and args.admin_email):
            raise AdminError("--admin-nick and --admin-email go together")
        _checkEmail(args.admin_email)
        password = _readPassword(stdin) if args.password_stdin else generatePassword()
        passwordHash = await hasher.hash(password)
        operator = Operator(
            id=0, licence=0, nick=args.admin_nick, operator_id=args.admin_email, is_admin=True
        )
    created = await store.createLicence(licence, operator, passwordHash)
    out.write(f"licence {created.number} created\n")
    if operator is not None:
        out.write(f"operator {operator.nick} created (administrator)\n")
        if not args.password_stdin:
            out.write(f"password {password}\n")


async def _createOperator(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    _checkEmail(args.email)
    _checkNonNegative("--max-chats", args.max_chats)
    if not args.nick.strip() or len(args.nick) > 64:
        raise AdminError("a nick has 1 to 64 characters")
    if await store.getLicence(args.licence) is None:
        raise AdminError(f"licence {args.licence} does not exist")
    password = _readPassword(stdin) if args.password_stdin else generatePassword()
    operator = Operator(
        id=0,
        licence=args.licence,
        nick=args.nick,
        operator_id=args.email,
        first_name=args.first_name,
        last_name=args.last_name,
        phone=args.phone,
        account_type=AccountType(args.account_type),
        max_chats=args.max_chats,
        is_admin=args.admin,
    )
    created = await store.createOperator(args.licence, operator, await hasher.hash(password))
    out.write(f"operator {created.nick} created in licence {args.licence}\n")
    if not args.password_stdin:
        out.write(f"password {password}\n")


async def _setPassword(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    if await store.getOperator(args.licence, args.nick) is None:
        raise AdminError(f"no operator {args.nick!r} in licence {args.licence}")
    password = _readPassword(stdin) if args.password_stdin else generatePassword()
    await store.setPasswordHash(args.licence, args.nick, await hasher.hash(password))
    out.write(f"password of {args.nick} in licence {args.licence} changed\n")
    if not args.password_stdin:
        out.write(f"password {password}\n")


def _seats(value: int | None) -> str:
    return "unlimited" if value is None else str(value)


async def _listLicences(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    rows = [["LICENCE", "TYPE", "NAME", "EXPIRES", "SEATS_CC", "SEATS_COM", "OPERATORS", "STATE"]]
    for licence in await store.listLicences():
        counts = await store.countOperators(licence.number)
        rows.append(
            [
                str(licence.number),
                "ASP-FULL" if licence.lic_type is LicenceType.ASP_FULL else "ASP-DEMO",
                licence.name or "-",
                formatTime(licence.expires_at) or "never",
                _seats(licence.seats_cc),
                _seats(licence.seats_com),
                str(sum(counts.values())),
                "disabled" if licence.disabled else "active",
            ]
        )
    if len(rows) == 1:
        out.write("no licences\n")
        return
    _table(rows, out)


async def _listOperators(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    if await store.getLicence(args.licence) is None:
        raise AdminError(f"licence {args.licence} does not exist")
    rows = [["NICK", "OPERATOR_ID", "NAME", "ACCOUNT_TYPE", "MAX_CHATS", "ADMIN", "STATE"]]
    for op in await store.listOperators(args.licence):
        rows.append(
            [
                op.nick,
                op.operator_id,
                f"{op.first_name} {op.last_name}".strip() or "-",
                op.account_type.value,
                "default" if op.max_chats is None else str(op.max_chats),
                "yes" if op.is_admin else "no",
                "disabled" if op.disabled else "active",
            ]
        )
    if len(rows) == 1:
        out.write(f"licence {args.licence} has no operators\n")
        return
    _table(rows, out)


async def _createApiKey(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    from livechat.apikeys import SCOPES, createKey

    unknown = set(args.scope) - SCOPES
    if unknown:
        raise AdminError(
            f"unknown scope(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(SCOPES))}"
        )
    if await store.getLicence(args.licence) is None:
        raise AdminError(f"licence {args.licence} does not exist")
    key, made = await createKey(store, args.licence, args.name, set(args.scope))
    out.write(f"API key {made.key_id} created in licence {args.licence}\n")
    out.write(f"key {key}\n")


async def _listApiKeys(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    keys = await store.listApiKeys(args.licence)
    if not keys:
        out.write(f"licence {args.licence} has no API keys\n")
        return
    rows = [["KEY_ID", "NAME", "SCOPES", "CREATED", "STATE"]]
    for keyId, name, scopes, created, revoked in keys:
        rows.append(
            [keyId, name or "-", scopes, formatTime(created), "revoked" if revoked else "active"]
        )
    _table(rows, out)


async def _revokeApiKey(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    await store.revokeApiKey(args.licence, args.key_id)
    out.write(f"API key {args.key_id} revoked\n")


async def _listDeliveries(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    from livechat.storage import hooks

    if await store.getLicence(args.licence) is None:
        raise AdminError(f"licence {args.licence} does not exist")
    found = await store.db.runLicence(
        args.licence,
        "list deliveries",
        hooks.listDeliveries_txn,
        state=args.state,
        limit=max(1, min(args.limit, 10000)),
    )
    if not found:
        out.write(f"licence {args.licence} has no such deliveries\n")
        return
    rows = [["ID", "ENDPOINT", "EVENT", "STATE", "ATTEMPTS", "CREATED", "LAST_ERROR"]]
    for d in found:
        rows.append(
            [
                str(d.id),
                d.endpoint,
                d.event,
                d.state,
                str(d.attempts),
                formatTime(d.created_at),
                d.last_error[:60] or "-",
            ]
        )
    _table(rows, out)


async def _replayDeliveries(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    from livechat.storage import hooks

    if await store.getLicence(args.licence) is None:
        raise AdminError(f"licence {args.licence} does not exist")
    now = int(__import__("time").time() * 1000)
    count = await store.db.runLicence(
        args.licence,
        "replay deliveries",
        hooks.replay_txn,
        now,
        deliveryId=args.id,
        endpoint=args.endpoint,
    )
    out.write(f"{count} deliveries queued again (the server sends them within WEBHOOK_SWEEP)\n")


async def _webhookSecret(
    store: SqlStore, hasher: PasswordHasher, args: Any, out: TextIO, stdin: TextIO
) -> None:
    import secrets

    from livechat.notify.webhooks import SERVER_SECRET_STATE

    await store.claimState(SERVER_SECRET_STATE, secrets.token_urlsafe(32))
    out.write(f"{await store.getState(SERVER_SECRET_STATE)}\n")


_COMMANDS = {
    "list-deliveries": _listDeliveries,
    "replay-deliveries": _replayDeliveries,
    "webhook-secret": _webhookSecret,
    "create-api-key": _createApiKey,
    "list-api-keys": _listApiKeys,
    "revoke-api-key": _revokeApiKey,
    "create-licence": _createLicence,
    "create-operator": _createOperator,
    "set-password": _setPassword,
    "list-licences": _listLicences,
    "list-operators": _listOperators,
    **webadmin.COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> None:
    """The console script."""
    argv = list(sys.argv[1:] if argv is None else argv)

    async def go(reactor: Any) -> None:
        code = await run(reactor, argv, sys.stdout, sys.stderr, sys.stdin)
        if code:
            raise SystemExit(code)

    task.react(lambda reactor: defer.ensureDeferred(go(reactor)))
