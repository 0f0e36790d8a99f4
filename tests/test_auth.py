"""
Tests for livechat.auth: operator login through twisted.cred against a real
(sqlite) store, password hashing, and throttling on a task.Clock.
"""

from __future__ import annotations

from typing import Any

from twisted.cred import portal
from twisted.internet import defer, task
from twisted.trial import unittest

from livechat.auth import (
    IOperatorAvatar,
    LicenceOperatorCredentials,
    LoginRefused,
    LoginThrottle,
    OperatorChecker,
    PasswordHasher,
    generatePassword,
    login,
    makePortal,
)
from livechat.model import AccountType, Licence, Operator
from tests.support.db import DialectMixin


def cheapHasher() -> PasswordHasher:
    """Real argon2id, cheap parameters, run synchronously (no threads)."""
    return PasswordHasher(defer.maybeDeferred, timeCost=1, memoryCostKiB=8)


class HasherTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_hashAndVerify(self) -> Any:
        """A hash verifies its password only; it is argon2id and salted."""
        hasher = cheapHasher()
        first = yield hasher.hash("correct horse")
        second = yield hasher.hash("correct horse")
        self.assertTrue(first.startswith("$argon2id$"))
        self.assertNotEqual(first, second)
        self.assertTrue((yield hasher.verify(first, "correct horse")))
        self.assertFalse((yield hasher.verify(first, "correct horsE")))
        self.assertFalse((yield hasher.verify(None, "correct horse")))
        self.assertFalse((yield hasher.verify("not-a-hash", "x")))

    @defer.inlineCallbacks
    def test_runsInThreads(self) -> Any:
        """forReactor hashes in the reactor's thread pool, not on the reactor thread."""
        import threading

        from twisted.internet import reactor

        seen = []
        hasher = PasswordHasher.forReactor(reactor, timeCost=1, memoryCostKiB=8)
        real = hasher._argon2

        class Spy:
            def hash(self, password: str) -> str:
                seen.append(threading.current_thread())
                return real.hash(password)

        hasher._argon2 = Spy()  # type: ignore[assignment]
        yield hasher.hash("pw")
        self.assertEqual(len(seen), 1)
        self.assertIsNot(seen[0], threading.main_thread())

    def test_needsRehash(self) -> None:
        """A hash made with weaker parameters needs a rehash; garbage does too."""
        weak = cheapHasher()._argon2.hash("x")
        strong = PasswordHasher(defer.maybeDeferred)
        self.assertTrue(strong.needsRehash(weak))
        self.assertFalse(strong.needsRehash(strong._argon2.hash("x")))
        self.assertTrue(strong.needsRehash("garbage"))

    def test_generatePassword(self) -> None:
        """Generated passwords are long and differ."""
        passwords = {generatePassword() for _ in range(50)}
        self.assertEqual(len(passwords), 50)
        self.assertTrue(all(len(p) >= 16 for p in passwords))


class ThrottleTests(unittest.TestCase):
    def test_perAccount(self) -> None:
        """
        After max failures for one licence+nick, further attempts wait until
        the window that holds them ends; then they are allowed again.
        """
        clock = task.Clock()
        throttle = LoginThrottle(clock, maxPerAccount=3, maxPerAddress=100, window=60)
        for _ in range(2):
            throttle.failed(1, "anna", "10.0.0.1")
        self.assertEqual(throttle.retryAfter(1, "anna", "10.0.0.1"), 0)
        clock.advance(10)
        throttle.failed(1, "ANNA", "10.0.0.2")
        # The window opened with the first failure, ten seconds ago.
        self.assertEqual(throttle.retryAfter(1, "anna", "10.0.0.3"), 50)
        self.assertEqual(throttle.retryAfter(1, "bob", "10.0.0.3"), 0)
        self.assertEqual(throttle.retryAfter(2, "anna", "10.0.0.3"), 0)
        clock.advance(49.5)
        self.assertEqual(throttle.retryAfter(1, "anna", None), 0.5)
        clock.advance(0.5)
        self.assertEqual(throttle.retryAfter(1, "anna", None), 0)

    def test_perAddress(self) -> None:
        """One address failing on many nicks is stopped for all nicks."""
        clock = task.Clock()
        throttle = LoginThrottle(clock, maxPerAccount=100, maxPerAddress=4, window=60)
        for i in range(4):
            throttle.failed(1, f"nick{i}", "10.0.0.9")
        self.assertGreater(throttle.retryAfter(1, "fresh", "10.0.0.9"), 0)
        self.assertEqual(throttle.retryAfter(1, "fresh", "10.0.0.8"), 0)

    def test_successClearsAccount(self) -> None:
        """A good login clears the account's count (the address count stays)."""
        clock = task.Clock()
        throttle = LoginThrottle(clock, maxPerAccount=2, maxPerAddress=3, window=60)
        throttle.failed(1, "anna", "a")
        throttle.succeeded(1, "anna")
        throttle.failed(1, "anna", "a")
        self.assertEqual(throttle.retryAfter(1, "anna", "b"), 0)
        throttle.failed(1, "x", "a")
        self.assertGreater(throttle.retryAfter(1, "anna", "a"), 0)

    def test_boundedMemory(self) -> None:
        """The throttle never holds more than maxKeys counters."""
        clock = task.Clock()
        throttle = LoginThrottle(clock, window=60, maxKeys=50)
        for i in range(500):
            clock.advance(0.01)
            throttle.failed(1, f"n{i}", f"10.0.{i // 256}.{i % 256}")
        self.assertLessEqual(len(throttle._counts), 50)


class LoginTests(DialectMixin, unittest.TestCase):
    """Login through the portal, against a real store."""

    @defer.inlineCallbacks
    def setUp(self) -> Any:
        self.clock = task.Clock()
        self.clock.advance(1_800_000_000)
        self.store = yield self.openStore()
        self.hasher = cheapHasher()
        self.throttle = LoginThrottle(self.clock, maxPerAccount=3, maxPerAddress=10, window=900)
        self.portal = makePortal(self.store, self.hasher, self.throttle, self.clock)
        hashed = yield self.hasher.hash("s3cret-pw")
        yield self.store.createLicence(
            Licence(number=100, seats_cc=2),
            Operator(id=0, licence=0, nick="anna", operator_id="anna@example.com"),
            hashed,
        )
        self.hashed = hashed

    def login(
        self,
        nick: str = "anna",
        password: str = "s3cret-pw",
        licence: int = 100,
        address: str = "10.0.0.1",
    ) -> defer.Deferred[Any]:
        return login(self.portal, licence, nick, password, address)

    @defer.inlineCallbacks
    def refused(self, code: str, **kw: Any) -> Any:
        failure = yield self.assertFailure(self.login(**kw), LoginRefused)
        self.assertEqual(failure.code, code, str(failure))
        return failure

    @defer.inlineCallbacks
    def test_good(self) -> Any:
        """Right licence, nick (any case) and password give the operator's avatar."""
        avatar = yield self.login(nick="ANNA")
        self.assertTrue(IOperatorAvatar.providedBy(avatar))
        self.assertEqual(avatar.operator.nick, "anna")
        self.assertEqual(avatar.licence.number, 100)

    @defer.inlineCallbacks
    def test_bad(self) -> Any:
        """Wrong password, unknown nick, unknown licence: the same refusal."""
        messages = set()
        for kw in ({"password": "wrong"}, {"nick": "nobody"}, {"licence": 999}):
            failure = yield self.refused("bad_credentials", **kw)
            messages.add(str(failure))
        self.assertEqual(messages, {"wrong licence, nick or password"})

    @defer.inlineCallbacks
    def test_missingNickStillHashes(self) -> Any:
        """An unknown nick costs a password verification too (no timing oracle)."""
        calls = []
        original = self.hasher.verify

        def spy(h: Any, p: str) -> Any:
            calls.append(h)
            return original(h, p)

        self.hasher.verify = spy  # type: ignore[method-assign]
        yield self.refused("bad_credentials", nick="nobody")
        self.assertEqual(calls, [None])

    @defer.inlineCallbacks
    def test_throttled(self) -> Any:
        """
        After three wrong passwords the account is throttled, even with the
        right password, without verifying anything; after the window it works.
        """
        for _ in range(3):
            yield self.refused("bad_credentials", password="wrong")
        failure = yield self.refused("throttled")
        self.assertEqual(failure.retryAfter, 900)
        self.assertIn("try again in", str(failure))
        self.clock.advance(900)
        avatar = yield self.login()
        self.assertEqual(avatar.operator.nick, "anna")

    @defer.inlineCallbacks
    def test_throttledByAddress(self) -> Any:
        """Ten failures from one address throttle every nick from there."""
        for i in range(10):
            yield self.refused("bad_credentials", nick=f"guess{i}", address="10.9.9.9")
        yield self.refused("throttled", address="10.9.9.9")
        yield self.login(address="10.0.0.2")

    @defer.inlineCallbacks
    def test_expired(self) -> Any:
        """An expired licence refuses a correct login and says when it expired."""
        yield self.store.updateLicence(100, expires_at=int(self.clock.seconds() * 1000))
        failure = yield self.refused("expired")
        self.assertIn("licence 100 expired on 2027-01-15 08:00:00 UTC", str(failure))
        yield self.refused("bad_credentials", password="wrong")

    @defer.inlineCallbacks
    def test_notYetExpired(self) -> Any:
        """A licence expiring a second from now still logs in."""
        yield self.store.updateLicence(100, expires_at=int(self.clock.seconds() * 1000) + 1000)
        yield self.login()

    @defer.inlineCallbacks
    def test_overSeats(self) -> Any:
        """
        When the seats were lowered below the enabled operators, logins of
        that account type are refused with the counts; other types still work.
        """
        yield self.store.createOperator(
            100, Operator(id=0, licence=0, nick="bob", operator_id="bob@example.com"), self.hashed
        )
        yield self.store.createOperator(
            100,
            Operator(
                id=0,
                licence=0,
                nick="cid",
                operator_id="cid@example.com",
                account_type=AccountType.COMMUNICATOR,
            ),
            self.hashed,
        )
        yield self.login()
        yield self.store.updateLicence(100, seats_cc=1)
        failure = yield self.refused("over_seats")
        self.assertIn("2 contact_center operators for 1 seat(s)", str(failure))
        yield self.login(nick="cid")

    @defer.inlineCallbacks
    def test_disabled(self) -> Any:
        """A disabled operator, or a disabled licence, cannot log in."""
        yield self.store.updateOperator(100, "anna", disabled=True)
        yield self.refused("disabled")
        yield self.store.updateOperator(100, "anna", disabled=False)
        yield self.store.updateLicence(100, disabled=True)
        yield self.refused("licence_disabled")

    def test_checkerInterfaces(self) -> None:
        """The checker declares the credentials it takes; the realm is a realm."""
        checker = OperatorChecker(self.store, self.hasher, self.throttle, self.clock)
        self.assertTrue(portal.IRealm.providedBy(self.portal.realm))
        self.assertEqual(
            list(checker.credentialInterfaces), self.portal.listCredentialsInterfaces()
        )
        self.assertNotIn("s3cret", repr(LicenceOperatorCredentials(1, "a", "s3cret")))
