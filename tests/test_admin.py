"""livechat-admin: every command, its output, its errors and exit status."""

from __future__ import annotations

import io
import os
import shutil
import sys
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial import unittest

from livechat.admin import run
from livechat.storage import SqlStore
from tests.support.db import DialectMixin, bothDialects
from tests.support.process import ServerProcess
from tests.test_auth import cheapHasher


class AdminMixin(DialectMixin):
    def setUp(self) -> None:
        self.url = self.databaseURL()
        self.hasher = cheapHasher()

    @defer.inlineCallbacks
    def admin(self, *argv: str, stdin: str = "") -> Any:
        out, err = io.StringIO(), io.StringIO()
        code = yield defer.ensureDeferred(
            run(
                reactor,
                ["--database", self.url, *argv],
                out,
                err,
                io.StringIO(stdin),
                self.hasher,
            )
        )
        return code, out.getvalue(), err.getvalue()

    @defer.inlineCallbacks
    def store(self) -> Any:
        store = SqlStore(self.url, reactor)
        self.addCleanup(store.close)
        yield store.open()
        return store

    @defer.inlineCallbacks
    def test_createLicenceWithAdmin(self) -> Any:
        """
        create-licence makes the licence and its administrator, prints the
        generated password once, and that password logs in.
        """
        code, out, err = yield self.admin(
            "create-licence",
            "--number",
            "123456",
            "--seats-cc",
            "2",
            "--name",
            "Acme",
            "--expires",
            "2030-01-01",
            "--admin-nick",
            "anna",
            "--admin-email",
            "anna@acme.example",
        )
        self.assertEqual((code, err), (0, ""))
        lines = out.splitlines()
        self.assertEqual(
            lines[:2], ["licence 123456 created", "operator anna created (administrator)"]
        )
        password = lines[2].split(" ", 1)[1]
        store = yield self.store()
        licence = yield store.getLicence(123456)
        self.assertEqual((licence.name, licence.seats_cc), ("Acme", 2))
        _, operator, hashed = yield store.getCredentials(123456, "anna")
        self.assertTrue(operator.is_admin)
        self.assertTrue((yield self.hasher.verify(hashed, password)))

    @defer.inlineCallbacks
    def test_operatorLifecycle(self) -> Any:
        """create-operator, set-password (stdin) and list-operators work together."""
        yield self.admin("create-licence", "--number", "7")
        code, out, _ = yield self.admin(
            "create-operator",
            "7",
            "bob",
            "--email",
            "bob@x.example",
            "--first-name",
            "Bob",
            "--account-type",
            "communicator",
            "--max-chats",
            "4",
        )
        self.assertEqual(code, 0)
        self.assertIn("operator bob created in licence 7", out)
        code, out, _ = yield self.admin(
            "set-password", "7", "BOB", "--password-stdin", stdin="a long password\n"
        )
        self.assertEqual((code, out), (0, "password of BOB in licence 7 changed\n"))
        store = yield self.store()
        hashed = (yield store.getCredentials(7, "bob"))[2]
        self.assertTrue((yield self.hasher.verify(hashed, "a long password")))
        code, out, _ = yield self.admin("list-operators", "7")
        self.assertEqual(code, 0)
        header, row = out.splitlines()
        self.assertEqual(
            header.split(),
            ["NICK", "OPERATOR_ID", "NAME", "ACCOUNT_TYPE", "MAX_CHATS", "ADMIN", "STATE"],
        )
        self.assertEqual(
            row.split(), ["bob", "bob@x.example", "Bob", "communicator", "4", "no", "active"]
        )

    @defer.inlineCallbacks
    def test_listLicences(self) -> Any:
        """list-licences shows each licence with type, seats and operator count."""
        code, out, _ = yield self.admin("list-licences")
        self.assertEqual((code, out), (0, "no licences\n"))
        yield self.admin(
            "create-licence",
            "--number",
            "5",
            "--type",
            "9",
            "--seats-com",
            "3",
            "--admin-nick",
            "a",
            "--admin-email",
            "a@x.example",
        )
        code, out, _ = yield self.admin("list-licences")
        self.assertEqual(
            out.splitlines()[1].split(),
            ["5", "ASP-DEMO", "-", "never", "unlimited", "3", "1", "active"],
        )

    @defer.inlineCallbacks
    def test_errors(self) -> Any:
        """Each mistake is one clear line on stderr and a non-zero status."""
        yield self.admin(
            "create-licence",
            "--number",
            "1",
            "--seats-cc",
            "1",
            "--admin-nick",
            "a",
            "--admin-email",
            "a@x.example",
        )
        cases = [
            (["create-licence", "--number", "1"], 1, "licence 1 exists already"),
            (
                ["create-operator", "1", "b", "--email", "b@x.example"],
                1,
                "licence 1 has 1 contact_center seat(s), all taken",
            ),
            (
                ["create-operator", "2", "b", "--email", "b@x.example"],
                1,
                "licence 2 does not exist",
            ),
            (
                ["create-operator", "1", "b", "--email", "nope"],
                1,
                "'nope' is not an e-mail address",
            ),
            (
                [
                    "create-operator",
                    "1",
                    "a",
                    "--email",
                    "z@x.example",
                    "--account-type",
                    "communicator",
                ],
                1,
                "nick 'a' is taken",
            ),
            (["set-password", "1", "zed"], 1, "no operator 'zed' in licence 1"),
            (["set-password", "1", "a", "--password-stdin"], 1, "at least 8 characters"),
            (["list-operators", "9"], 1, "licence 9 does not exist"),
            (["create-licence", "--seats-cc", "-1"], 1, "--seats-cc cannot be negative"),
            (["create-licence", "--expires", "tomorrow"], 1, "--expires: expected a date"),
            (
                ["create-licence", "--admin-nick", "x"],
                1,
                "--admin-nick and --admin-email go together",
            ),
            (["--set", "NOPE=1", "list-licences"], 2, "expected KEY=VALUE with a known key"),
        ]
        for argv, status, message in cases:
            code, out, err = yield self.admin(*argv, stdin="short\n")
            self.assertEqual(code, status, argv)
            self.assertIn(message, err, argv)
            self.assertTrue(err.startswith("livechat-admin: error: "), err)
            self.assertEqual(err.count("\n"), 1, err)

    @defer.inlineCallbacks
    def test_usage(self) -> Any:
        """An unknown command is a usage error, status 2."""
        self.patch(sys, "stderr", io.StringIO())
        code, _, _ = yield self.admin("explode")
        self.assertEqual(code, 2)

    @defer.inlineCallbacks
    def test_apiKeys(self) -> Any:
        """
        create-api-key prints a key once; it checks out for its licence and
        scope only; list shows it without the secret; revoke ends it.
        """
        from livechat.apikeys import checkKey

        yield self.admin("create-licence", "--number", "5")
        yield self.admin("create-licence", "--number", "6")
        code, out, err = yield self.admin(
            "create-api-key", "5", "--name", "web", "--scope", "control"
        )
        self.assertEqual((code, err), (0, ""))
        key = out.splitlines()[1].split(" ", 1)[1]
        store = yield self.store()
        found = yield checkKey(store, key, licence=5, scope="control")
        self.assertEqual((found.licence, found.name), (5, "web"))
        self.assertIsNone((yield checkKey(store, key, licence=6)))
        self.assertIsNone((yield checkKey(store, key, scope="api")))
        self.assertIsNone((yield checkKey(store, key[:-1] + ("A" if key[-1] != "A" else "B"))))
        self.assertIsNone((yield checkKey(store, "garbage")))
        code, out, _ = yield self.admin("list-api-keys", "5")
        self.assertIn(found.key_id, out)
        self.assertNotIn(key, out)
        code, out, _ = yield self.admin("revoke-api-key", "5", found.key_id)
        self.assertEqual(code, 0)
        self.assertIsNone((yield checkKey(store, key)))
        code, _, err = yield self.admin("create-api-key", "5", "--scope", "root")
        self.assertEqual(code, 1)
        self.assertIn("unknown scope", err)
        code, _, err = yield self.admin("revoke-api-key", "6", found.key_id)
        self.assertEqual(code, 1)


globals().update(bothDialects(AdminMixin, "AdminTests"))


class ConsoleScriptTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_script(self) -> Any:
        """The installed livechat-admin script runs and exits with the right status."""
        script = shutil.which("livechat-admin") or os.path.join(
            os.path.dirname(sys.executable), "livechat-admin"
        )
        if not os.path.exists(script):
            raise unittest.SkipTest("livechat-admin is not installed (pip install .)")
        directory = os.path.abspath(self.mktemp())
        ok = ServerProcess.spawn(
            self, [script, "--data-dir", directory, "create-licence", "--number", "42"]
        )
        self.assertEqual((yield ok.ended()), 0, ok.output)
        self.assertIn("licence 42 created", ok.output)
        bad = ServerProcess.spawn(self, [script, "--data-dir", directory, "list-operators", "43"])
        self.assertEqual((yield bad.ended()), 1, bad.output)
        self.assertIn("licence 43 does not exist", bad.output)
