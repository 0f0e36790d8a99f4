"""
Who may log in: C{twisted.cred} for operators (licence number + nick +
password), with passwords hashed by argon2 off the reactor thread and failed
attempts throttled per licence+nick and per source address.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import attr
from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.cred import checkers, credentials, error, portal
from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from livechat.model import Licence, Operator

# -- passwords -----------------------------------------------------------------


class PasswordHasher:
    """
    Hash and verify passwords with argon2id, in threads.

    @param runInThread: C{f(func, *args) -> Deferred}; by default the
        reactor's thread pool.  Tests pass a synchronous one.
    """

    def __init__(
        self,
        runInThread: Callable[..., defer.Deferred[Any]],
        *,
        timeCost: int = 3,
        memoryCostKiB: int = 65536,
        parallelism: int = 1,
    ) -> None:
        self._run = runInThread
        self._argon2 = _Argon2(
            time_cost=timeCost, memory_cost=memoryCostKiB, parallelism=parallelism
        )
        # Verified against when a nick does not exist, so that a missing nick
        # and a wrong password take the same time.
        self._dummy = self._argon2.hash(secrets.token_urlsafe(16))

    @classmethod
    def forReactor(cls, reactor: Any, **params: Any) -> PasswordHasher:
        def run(func: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
            return threads.deferToThreadPool(reactor, reactor.getThreadPool(), func, *args)

        return cls(run, **params)

    def hash(self, password: str) -> defer.Deferred[str]:
        return self._run(self._argon2.hash, password)

    def verify(self, passwordHash: str | None, password: str) -> defer.Deferred[bool]:
        """Fires with whether C{password} matches (C{False} for a missing hash)."""
        target = passwordHash or self._dummy

        def check() -> bool:
            try:
                self._argon2.verify(target, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
            return passwordHash is not None

        return self._run(check)

    def needsRehash(self, passwordHash: str) -> bool:
        try:
            return self._argon2.check_needs_rehash(passwordHash)
        except InvalidHashError:
            return True


def generatePassword() -> str:
    """A random password for a new account: 16 URL-safe characters."""
    return secrets.token_urlsafe(12)


# -- throttling ---------------------------------------------------------------


class LoginThrottle:
    """
    Count failed logins per licence+nick and per source address over a
    window; refuse further attempts once a count reaches its limit, until the
    window that holds the failures has passed.  Memory is bounded: at most
    C{maxKeys} counters are kept, expired ones are dropped first.
    """

    def __init__(
        self,
        clock: Any,
        maxPerAccount: int = 5,
        maxPerAddress: int = 20,
        window: float = 900.0,
        maxKeys: int = 100_000,
    ) -> None:
        self._clock = clock
        self.maxPerAccount = maxPerAccount
        self.maxPerAddress = maxPerAddress
        self.window = window
        self._maxKeys = maxKeys
        self._counts: dict[tuple[Any, ...], tuple[int, float]] = {}

    def configure(self, maxPerAccount: int, maxPerAddress: int, window: float) -> None:
        self.maxPerAccount = maxPerAccount
        self.maxPerAddress = maxPerAddress
        self.window = window

    def _keys(
        self, licence: int, nick: str, address: str | None
    ) -> list[tuple[tuple[Any, ...], int]]:
        keys: list[tuple[tuple[Any, ...], int]] = [
            (("account", licence, nick.strip().casefold()), self.maxPerAccount)
        ]
        if address:
            keys.append((("address", address), self.maxPerAddress))
        return keys

    def retryAfter(self, licence: int, nick: str, address: str | None) -> float:
        """Seconds until a login may be tried again; 0 when it may now."""
        now = self._clock.seconds()
        wait = 0.0
        for key, limit in self._keys(licence, nick, address):
            count, start = self._counts.get(key, (0, now))
            if now - start >= self.window:
                continue
            if count >= limit:
                wait = max(wait, start + self.window - now)
        return wait

    def failed(self, licence: int, nick: str, address: str | None) -> None:
        now = self._clock.seconds()
        keys = self._keys(licence, nick, address)
        if len(self._counts) + len(keys) > self._maxKeys:
            self._purge(now, room=len(keys))
        for key, _ in keys:
            count, start = self._counts.pop(key, (0, now))
            if now - start >= self.window:
                count, start = 0, now
            # Re-inserted, so the dict stays ordered by last failure.
            self._counts[key] = (count + 1, start)

    def succeeded(self, licence: int, nick: str) -> None:
        self._counts.pop(("account", licence, nick.strip().casefold()), None)

    def _purge(self, now: float, room: int) -> None:
        for key, (_, start) in list(self._counts.items()):
            if now - start >= self.window:
                del self._counts[key]
        while self._counts and len(self._counts) + room > self._maxKeys:
            # Still full of live counters: drop the least recently failed.
            del self._counts[next(iter(self._counts))]


# -- cred ---------------------------------------------------------------------


class ILicenceOperatorCredentials(credentials.ICredentials):
    """Licence number, nick and password, and where the attempt came from."""

    licence = Attribute("Licence number (int).")
    nick = Attribute("Operator nick (str).")
    password = Attribute("Password (str).")
    address = Attribute("Source address (str) or None.")


@implementer(ILicenceOperatorCredentials)
@attr.s(frozen=True, auto_attribs=True, repr=False)
class LicenceOperatorCredentials:
    licence: int
    nick: str
    password: str
    address: str | None = None

    def __repr__(self) -> str:
        return f"<LicenceOperatorCredentials {self.licence}/{self.nick} from {self.address}>"


class LoginRefused(error.UnauthorizedLogin):
    """
    A login was refused.  C{code} is stable for programs, C{str()} is for
    people: C{bad_credentials}, C{throttled}, C{expired}, C{over_seats},
    C{disabled}, C{licence_disabled}.
    """

    def __init__(self, code: str, message: str, retryAfter: float = 0.0) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryAfter = retryAfter

    def __str__(self) -> str:
        return self.message


@attr.s(frozen=True, auto_attribs=True)
class OperatorId:
    """The avatar id of a logged-in operator."""

    licence: int
    operator: int


@implementer(checkers.ICredentialsChecker)
class OperatorChecker:
    """
    Check licence + nick + password against the store.

    The order matters: throttling first (a throttled attempt costs no hash),
    then the password (a wrong password says nothing about the licence),
    then the licence's state (expired, disabled, over its seats).
    """

    credentialInterfaces = (ILicenceOperatorCredentials,)
    _log = Logger()

    def __init__(self, store: Any, hasher: PasswordHasher, throttle: LoginThrottle, clock: Any):
        self._store = store
        self._hasher = hasher
        self._throttle = throttle
        self._clock = clock

    @defer.inlineCallbacks
    def requestAvatarId(self, creds: ILicenceOperatorCredentials) -> Any:
        wait = self._throttle.retryAfter(creds.licence, creds.nick, creds.address)
        if wait:
            self._log.warn(
                "login throttled: licence {licence} nick {nick!r} from {address}",
                licence=creds.licence,
                nick=creds.nick,
                address=creds.address,
            )
            raise LoginRefused(
                "throttled",
                f"too many failed logins; try again in {int(wait) + 1} s",
                retryAfter=wait,
            )
        found = yield self._store.getCredentials(creds.licence, creds.nick)
        passwordHash = found[2] if found else None
        ok = yield self._hasher.verify(passwordHash, creds.password)
        if not ok:
            self._throttle.failed(creds.licence, creds.nick, creds.address)
            self._log.info(
                "login failed: licence {licence} nick {nick!r} from {address}",
                licence=creds.licence,
                nick=creds.nick,
                address=creds.address,
            )
            raise LoginRefused("bad_credentials", "wrong licence, nick or password")
        licence: Licence = found[0]
        operator: Operator = found[1]
        nowMS = int(self._clock.seconds() * 1000)
        if operator.disabled:
            raise LoginRefused("disabled", f"operator {operator.nick} is disabled")
        if licence.disabled:
            raise LoginRefused("licence_disabled", f"licence {licence.number} is disabled")
        if licence.isExpired(nowMS):
            from livechat.storage.accounts import formatTime

            raise LoginRefused(
                "expired",
                f"licence {licence.number} expired on {formatTime(licence.expires_at)} UTC",
            )
        seats = licence.seatsFor(operator.account_type)
        subscribed = yield self._store.subscribedSeats(licence.number, nowMS)
        if subscribed is not None:
            # Running subscriptions decide the seats (NEW_OPERATOR_SUBSCRIPTION).
            seats = subscribed[operator.account_type]
        if seats is not None:
            counts = yield self._store.countOperators(licence.number)
            used = counts[operator.account_type]
            if used > seats:
                raise LoginRefused(
                    "over_seats",
                    f"licence {licence.number} has {used} {operator.account_type.value} "
                    f"operators for {seats} seat(s); ask the administrator to "
                    f"disable operators or add seats",
                )
        self._throttle.succeeded(creds.licence, creds.nick)
        return OperatorId(licence.number, operator.id)


class IOperatorAvatar(Interface):
    """A logged-in operator."""

    licence = Attribute("The L{livechat.model.Licence}.")
    operator = Attribute("The L{livechat.model.Operator}.")


@implementer(IOperatorAvatar)
@attr.s(frozen=True, auto_attribs=True)
class OperatorAvatar:
    licence: Licence
    operator: Operator


@implementer(portal.IRealm)
class LivechatRealm:
    """Turns an L{OperatorId} into an L{OperatorAvatar}."""

    def __init__(self, store: Any) -> None:
        self._store = store

    @defer.inlineCallbacks
    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        # Our checker's avatar ids are OperatorIds, not IRealm's usual bytes.
        if not isinstance(avatarId, OperatorId):
            raise NotImplementedError("only OperatorId avatar ids are known")
        if IOperatorAvatar not in interfaces:
            raise NotImplementedError("only IOperatorAvatar is offered")
        licence = yield self._store.getLicence(avatarId.licence)
        operator = yield self._store.getOperatorById(avatarId.licence, avatarId.operator)
        if licence is None or operator is None:
            raise error.UnauthorizedLogin("the account was removed")
        return IOperatorAvatar, OperatorAvatar(licence, operator), lambda: None


def makePortal(
    store: Any, hasher: PasswordHasher, throttle: LoginThrottle, clock: Any
) -> portal.Portal:
    return portal.Portal(LivechatRealm(store), [OperatorChecker(store, hasher, throttle, clock)])


def login(
    thePortal: portal.Portal,
    licence: int,
    nick: str,
    password: str,
    address: str | None = None,
) -> defer.Deferred[OperatorAvatar]:
    """Log an operator in; fires with the L{OperatorAvatar} or fails with L{LoginRefused}."""
    d = thePortal.login(
        LicenceOperatorCredentials(licence, nick, password, address), None, IOperatorAvatar
    )
    return d.addCallback(_avatar)


def _avatar(result: Any) -> OperatorAvatar:
    """The avatar of a portal login's (interface, avatar, logout)."""
    avatar: OperatorAvatar = result[1]
    return avatar
