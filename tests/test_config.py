"""
Tests for livechat.config: every key, every kind of error, the sample file.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.trial import unittest

from livechat import config as C
from livechat.config import KEYS, ConfigError, loadConfig

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(os.path.dirname(HERE), "etc", "lc_serv.cfg")

# For each key: a good raw value with what it parses to, and a bad raw value
# with a fragment of the error.  A test checks that every key is listed.
ENDPOINT_CASES = (
    ("ssl:443:privateKey=k.pem", "ssl:443:privateKey=k.pem"),
    ("udp:1", "unknown endpoint type"),
)
BOOL_CASES = (("1", True), ("maybe", "expected 0 or 1"))
CASES: dict[str, tuple[tuple[str, Any], tuple[str, str]]] = {
    "HTTP_LISTEN": (
        ("tcp:8080:interface=::1", "tcp:8080:interface=::1"),
        ("tcp:99999", "out of range"),
    ),
    "IWCS_LISTEN": (("none", ""), ("tcp:port", "not a number")),
    "PANEL_LISTEN": (("unix:/run/lc.sock", "unix:/run/lc.sock"), ("tcp", "needs a port")),
    "DATA_DIR": (("/var/lib/livechat", "/var/lib/livechat"), None),  # type: ignore[dict-item]
    "DATABASE": (
        (
            "mysql://lc:pw@db:3306/db_livechat?prefix=x_",
            "mysql://lc:pw@db:3306/db_livechat?prefix=x_",
        ),
        ("postgres://x", "sqlite:/// or mysql://"),
    ),
    "REDIS": (
        ("redis://127.0.0.1:6379/0?prefix=lc1:", "redis://127.0.0.1:6379/0?prefix=lc1:"),
        ("redis://h/0?pool=3", "unknown REDIS URL option"),
    ),
    "PRESENCE_TTL": (("3", 3), ("2", "out of range")),
    "LICENCE_FILE": (("/etc/livechat/lc_licence.cfg", "/etc/livechat/lc_licence.cfg"), None),  # type: ignore[dict-item]
    "DEMO_LICENCE": (("0", False), ("2", "expected 0 or 1")),
    "SESSION_SECRET": (("s3cret", "s3cret"), None),  # type: ignore[dict-item]
    "DEV_MODE": BOOL_CASES,
    "SESSION_IDLE_TIMEOUT": (("60", 60), ("59", "out of range")),
    "SESSION_MAX_AGE": (("300", 300), ("7776001", "out of range")),
    "SESSION_MAX_PER_OPERATOR": (("1", 1), ("0", "out of range")),
    "SESSION_CHECK_INTERVAL": (("5", 5), ("4", "out of range")),
    "AGENT_MAX_MESSAGE_BYTES": (("1024", 1024), ("1023", "out of range")),
    "AGENT_SEND_BUFFER": (("65536", 65536), ("65535", "out of range")),
    "CANNED_MAX_PER_LICENCE": (("1", 1), ("0", "out of range")),
    "CANNED_MAX_LENGTH": (("100000", 100000), ("100001", "out of range")),
    "MAX_CHATS_PER_AGENT": (("0", 0), ("-1", "out of range")),
    "GC_FREEZE": (("0", False), ("2", "expected 0 or 1")),
    "GC_THRESHOLD": (("100", 100), ("99", "out of range")),
    "LOGIN_MAX_FAILURES": (("10", 10), ("0", "out of range")),
    "LOGIN_MAX_FAILURES_PER_ADDRESS": (("100", 100), ("x", "whole number")),
    "LOGIN_FAILURE_WINDOW": (("60", 60), ("86401", "out of range")),
    "CHAT_ACCEPT_TIMEOUT": (("45", 45), ("0", "out of range")),
    "OPERATOR_GRACE": (("0", 0), ("3601", "out of range")),
    "ORPHAN_SWEEP_INTERVAL": (("1", 1), ("0", "out of range")),
    "VISITOR_IDLE_TIMEOUT": (("300", 300), ("29", "out of range")),
    "MAX_MESSAGE_LENGTH": (("10", 10), ("0", "out of range")),
    "MAX_VISITORS_PER_LICENCE": (("100", 100), ("9", "out of range")),
    "IWCS_MAX_LINE": (("1024", 1024), ("255", "out of range")),
    "IWCS_IDLE_TIMEOUT": (("30", 30), ("4", "out of range")),
    "IWCS_MAX_ERRORS": (("3", 3), ("0", "out of range")),
    "IWCS_RATE": (("10", 10), ("0", "out of range")),
    "IWCS_BURST": (("10", 10), ("x", "whole number")),
    "IWCS_SEND_BUFFER": (("4096", 4096), ("4095", "out of range")),
    "IWCS_MAX_VISITORS": (("1", 1), ("0", "out of range")),
    "VERIFY_KEY_FILE": (
        ("/etc/livechat/lc_verify_pub.key", "/etc/livechat/lc_verify_pub.key"),
        None,
    ),  # type: ignore[dict-item]
    "SMTP_HOST": (("mail.example.com", "mail.example.com"), None),  # type: ignore[dict-item]
    "SMTP_PORT": (("587", 587), ("0", "out of range")),
    "SMTP_USER": (("me", "me"), None),  # type: ignore[dict-item]
    "SMTP_PASSWORD": (("pw", "pw"), None),  # type: ignore[dict-item]
    "SMTP_FROM": (("chat@example.com", "chat@example.com"), ("nobody", "e-mail")),
    "SMTP_STARTTLS": BOOL_CASES,
    "TRUSTED_PROXIES": (
        ("10.0.0.5, 192.168.0.0/24 ::1", ("10.0.0.5/32", "192.168.0.0/24", "::1/128")),
        ("10.0.0.300", "IP addresses or networks"),
    ),
    "WEB_MAX_MESSAGE_BYTES": (("1024", 1024), ("1023", "out of range")),
    "WEB_SEND_BUFFER": (("65536", 65536), ("4095", "out of range")),
    "WEB_PING_INTERVAL": (("5", 5), ("4", "out of range")),
    "WEB_PING_TIMEOUT": (("600", 600), ("601", "out of range")),
    "WEB_DEFLATE": BOOL_CASES,
    "WEB_MAX_TABS": (("1", 1), ("0", "out of range")),
    "WEB_MESSAGE_RATE": (("60", 60), ("0", "out of range")),
    "WEB_MESSAGE_BURST": (("1", 1), ("x", "whole number")),
    "WEB_CHAT_RATE": (("100000", 100000), ("100001", "out of range")),
    "WEB_CHAT_BURST": (("5", 5), ("-3", "out of range")),
    "WEB_ADDRESS_RATE": (("1000", 1000), ("0", "out of range")),
    "WEB_ADDRESS_BURST": (("10000000", 10000000), ("10000001", "out of range")),
    "WEB_TOKEN_DAYS": (("30", 30), ("3651", "out of range")),
    "WEB_SETTINGS_CACHE": (("0", 0), ("3601", "out of range")),
    "RPC_SERVER_IP": (("10.0.0.7", "10.0.0.7"), ("10.0.0.300", "IP address")),
    "LC_LOG_PATH": (("/var/log/livechat", "/var/log/livechat"), None),  # type: ignore[dict-item]
    "LOG_NAME_SHORT": BOOL_CASES,
    "LOG_PACKETS": BOOL_CASES,
    "LOG_EVENTS": BOOL_CASES,
    "LOG_SOCKETS": BOOL_CASES,
    "LOG_SCRIPT": BOOL_CASES,
    "LOG_CONTROL": BOOL_CASES,
}
CASES.update(
    {
        "WEBHOOK_METHOD": (("get", "GET"), ("PUT", "expected one of POST, GET")),
        "WEBHOOK_TIMEOUT": (("5", 5), ("0", "out of range")),
        "WEBHOOK_RETRY_FOR": (("3600", 3600), ("59", "out of range")),
        "WEBHOOK_CONCURRENCY": (("50", 50), ("0", "out of range")),
        "WEBHOOK_ENDPOINT_CONCURRENCY": (("2", 2), ("101", "out of range")),
        "WEBHOOK_ALLOW_PRIVATE": BOOL_CASES,
        "WEBHOOK_SECRET": (("a-secret", "a-secret"), None),  # type: ignore[dict-item]
        "WEBHOOK_SEND_PASSWORD": BOOL_CASES,
        "WEBHOOK_KEEP_DAYS": (("30", 30), ("0", "out of range")),
        "WEBHOOK_SWEEP": (("60", 60), ("x", "whole number")),
        "SERVER_API_KEY": (("k" * 32, "k" * 32), ("short", "at least 32 characters")),
        "API_RATE": (("5", 5), ("0", "out of range")),
        "API_BURST": (("10", 10), ("0", "out of range")),
        "API_MAX_BODY": (("2048", 2048), ("10", "out of range")),
        "CONNECTOR_SEND_BUFFER": (("65536", 65536), ("4095", "out of range")),
        "AGENT_RATE": (("1", 1), ("0", "out of range")),
        "AGENT_BURST": (("1000000", 1000000), ("1000001", "out of range")),
        "API_MAX_KEYS": (("1", 1), ("0", "out of range")),
        "PUBLIC_URL": (
            ("https://chat.example.com/", "https://chat.example.com/"),
            ("https://chat.example.com/?a=1", "no query or fragment"),
        ),
        "REPORT_MAX_DAYS": (("3660", 3660), ("3661", "out of range")),
    }
)
for _event in C.EVENT_NAMES:
    CASES[f"EVENT_{_event}"] = (
        ("http://hooks.example.com/events.pl", "http://hooks.example.com/events.pl"),
        ("ftp://x/y", "http:// or https://"),
    )


def load(text: str, name: str = "lc_serv.cfg") -> C.Config:
    return C.buildConfig(C.parseLines(text.splitlines(), name), {}, name)


class KeyTests(unittest.TestCase):
    def test_everyKeyIsTested(self) -> None:
        """The table above covers every key the server knows, and no other."""
        self.assertEqual(set(CASES), set(KEYS))

    def test_defaults(self) -> None:
        """With no file, every key has its documented default, parsed."""
        config = loadConfig(None)
        for name, key in KEYS.items():
            self.assertEqual(config[name], key.parse(key.default), name)
            self.assertEqual(config.origins[name], "default")
        self.assertEqual(config["HTTP_LISTEN"], "tcp:13200:interface=127.0.0.1")
        self.assertEqual(config["IWCS_LISTEN"], "tcp:13201:interface=127.0.0.1")
        self.assertEqual(config["PANEL_LISTEN"], "tcp:8443:interface=127.0.0.1")
        self.assertEqual(config["REDIS"], "")
        self.assertEqual(len([k for k in KEYS if k.startswith("EVENT_")]), 12)

    def test_goodValues(self) -> None:
        """Each key reads its good example value to the expected result."""
        for name, (good, _) in CASES.items():
            config = load(f"{name} {good[0]}\n")
            self.assertEqual(config[name], good[1], name)
            self.assertEqual(config.origins[name], "lc_serv.cfg:1")

    def test_badValues(self) -> None:
        """Each key's bad example stops with the file, the line, the key and why."""
        for name, (_, bad) in CASES.items():
            if bad is None:
                continue
            text = f"# comment\n\n{name} {bad[0]}\n"
            with self.assertRaises(ConfigError, msg=name) as caught:
                load(text)
            message = str(caught.exception)
            self.assertTrue(message.startswith(f"lc_serv.cfg:3: {name}: "), message)
            self.assertIn(bad[1], message)
            self.assertEqual(caught.exception.line, 3)


class FileTests(unittest.TestCase):
    def test_commentsAndBlankLines(self) -> None:
        """# lines and blank lines are skipped; values keep inner spaces."""
        config = load("# HTTP_LISTEN tcp:1\n\n   \nSMTP_HOST  mail host  \n")
        self.assertEqual(config["SMTP_HOST"], "mail host")
        self.assertEqual(config["HTTP_LISTEN"], KEYS["HTTP_LISTEN"].default)

    def test_keyCaseInsensitive(self) -> None:
        """Keys may be written in lower case."""
        self.assertEqual(load("smtp_port 2525")["SMTP_PORT"], 2525)

    def test_emptyValue(self) -> None:
        """A key alone sets the empty value (switching a webhook off)."""
        self.assertEqual(load("EVENT_CHAT_STARTED\n")["EVENT_CHAT_STARTED"], "")

    def test_unknownKey(self) -> None:
        """An unknown key stops with its line and a suggestion."""
        with self.assertRaises(ConfigError) as caught:
            load("HTTP_LISTEN tcp:1\nLOG_PACKET 1\n")
        self.assertEqual(
            str(caught.exception),
            "lc_serv.cfg:2: unknown key LOG_PACKET (did you mean LOG_PACKETS?)",
        )

    def test_duplicateKey(self) -> None:
        """A key set twice stops, naming both lines."""
        with self.assertRaises(ConfigError) as caught:
            load("SMTP_PORT 25\n#\nSMTP_PORT 26\n")
        self.assertEqual(
            str(caught.exception), "lc_serv.cfg:3: SMTP_PORT is set twice (first on line 1)"
        )

    def test_malformedLine(self) -> None:
        """A line that is not KEY value stops with its number."""
        with self.assertRaises(ConfigError) as caught:
            load("SMTP_PORT 25\n= 5\n")
        self.assertIn("lc_serv.cfg:2: cannot read", str(caught.exception))

    def test_missingFile(self) -> None:
        """A file that cannot be read says so, with its name."""
        path = self.mktemp()
        with self.assertRaises(ConfigError) as caught:
            loadConfig(path)
        self.assertIn(path, str(caught.exception))
        self.assertIn("cannot read the file", str(caught.exception))

    def test_notUtf8(self) -> None:
        """A file that is not UTF-8 is refused clearly."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"SMTP_HOST caf\xe9\n")
        with self.assertRaises(ConfigError) as caught:
            loadConfig(path)
        self.assertIn("not UTF-8", str(caught.exception))

    def test_overrides(self) -> None:
        """Command-line values win over the file and are parsed the same way."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("SMTP_PORT 25\nSMTP_HOST a\n")
        config = loadConfig(path, {"SMTP_PORT": "2525"})
        self.assertEqual(config["SMTP_PORT"], 2525)
        self.assertEqual(config.origins["SMTP_PORT"], "command line")
        self.assertEqual(config["SMTP_HOST"], "a")
        with self.assertRaises(ConfigError) as caught:
            loadConfig(path, {"SMTP_PORT": "x"})
        self.assertTrue(str(caught.exception).startswith("command line: SMTP_PORT:"))
        with self.assertRaises(ConfigError) as caught:
            loadConfig(path, {"NOPE": "1"})
        self.assertIn("unknown key NOPE", str(caught.exception))

    def test_reload(self) -> None:
        """reloadConfig reads the file again and keeps the command line's values."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("SMTP_HOST a\n")
        first = loadConfig(path, {"SMTP_PORT": "2525"})
        with open(path, "w") as f:
            f.write("SMTP_HOST b\nSMTP_PORT 26\n")
        second = C.reloadConfig(first)
        self.assertEqual(second["SMTP_HOST"], "b")
        self.assertEqual(second["SMTP_PORT"], 2525)
        self.assertEqual(first.changes(second), ["SMTP_HOST"])


class DerivedTests(unittest.TestCase):
    def test_databaseDefault(self) -> None:
        """Without DATABASE, sqlite in the data directory."""
        config = C.buildConfig({}, {"DATA_DIR": "/srv/lc"}, None)
        self.assertEqual(config.databaseURL, "sqlite:///srv/lc/db_livechat.sqlite3")
        config = C.buildConfig({}, {"DATABASE": "mysql://root@db/"}, None)
        self.assertEqual(config.databaseURL, "mysql://root@db/")

    def test_licenceFileBesideConfig(self) -> None:
        """lc_licence.cfg beside lc_serv.cfg is used when LICENCE_FILE is empty."""
        directory = self.mktemp()
        os.makedirs(directory)
        cfg = os.path.join(directory, "lc_serv.cfg")
        with open(cfg, "w") as f:
            f.write("")
        self.assertIsNone(loadConfig(cfg).licenceFile)
        with open(os.path.join(directory, "lc_licence.cfg"), "w") as f:
            f.write("")
        self.assertEqual(
            loadConfig(cfg).licenceFile, os.path.join(os.path.abspath(directory), "lc_licence.cfg")
        )

    def test_webhookURLs(self) -> None:
        """webhookURLs lists the events that have a URL, by the seed's names."""
        config = load("EVENT_CHAT_STARTED http://h/x\nEVENT_OPERATOR_STOPED_CHAT http://h/y\n")
        self.assertEqual(
            config.webhookURLs(),
            {"CHAT_STARTED": "http://h/x", "OPERATOR_STOPED_CHAT": "http://h/y"},
        )

    def test_secretsMasked(self) -> None:
        """describe() never shows a secret."""
        config = load("SESSION_SECRET abc\nSMTP_PASSWORD def\nSMTP_HOST h\n")
        self.assertEqual(config.describe("SESSION_SECRET"), "********")
        self.assertEqual(config.describe("SMTP_PASSWORD"), "********")
        self.assertEqual(config.describe("SMTP_HOST"), "'h'")


class SampleTests(unittest.TestCase):
    def test_sampleIsCurrent(self) -> None:
        """etc/lc_serv.cfg is exactly the generated sample: every key, its default."""
        with open(SAMPLE, encoding="utf-8") as f:
            self.assertEqual(f.read(), C.sampleConfig())

    def test_sampleUncommentedIsDefaults(self) -> None:
        """Uncommenting every key of the sample gives the default configuration."""
        lines = []
        for line in C.sampleConfig().splitlines():
            candidate = line[1:]
            if line.startswith("#") and candidate.split(" ")[0] in KEYS:
                lines.append(candidate)
        self.assertEqual(len(lines), len(KEYS))
        self.assertEqual(load("\n".join(lines)).values, loadConfig(None).values)


class DocsTests(unittest.TestCase):
    def test_everyKeyDocumented(self) -> None:
        """docs/configuration.md has a row for every key, with its default."""
        path = os.path.join(os.path.dirname(HERE), "docs", "configuration.md")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        self.assertTrue(
            text.endswith("## All keys\n\n" + C.keysTable()),
            "run `python -m livechat.config write` after changing a key",
        )
