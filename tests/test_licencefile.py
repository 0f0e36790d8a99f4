"""lc_licence.cfg parsing."""

from __future__ import annotations

from twisted.trial import unittest

from livechat.config import ConfigError
from livechat.licencefile import parseDate, parseLicenceFile, readLicenceFile
from livechat.model import LicenceType


class LicenceFileTests(unittest.TestCase):
    def test_parse(self) -> None:
        """Several licences, each with the fields after its LICENCE line."""
        text = """
        # two licences
        LICENCE 123456
        LIC_TYPE 9
        EXPIRATION_DATE 2027-01-31 12:00
        OPERATORS_COUNT_CC 10
        OPERATORS_COUNT_COM unlimited
        LANGUAGE pl
        NAME Acme Sp. z o.o.
        LICENCE 7
        """
        result = parseLicenceFile(text.splitlines(), "lc_licence.cfg")
        self.assertEqual(
            result,
            [
                {
                    "number": 123456,
                    "lic_type": LicenceType.ASP_DEMO,
                    "expires_at": parseDate("2027-01-31 12:00:00"),
                    "seats_cc": 10,
                    "seats_com": None,
                    "language": "pl",
                    "name": "Acme Sp. z o.o.",
                },
                {"number": 7},
            ],
        )

    def test_errors(self) -> None:
        """Each mistake names its line and says what is wrong."""
        cases = [
            ("LIC_TYPE 1", "1: LIC_TYPE before any LICENCE line"),
            ("LICENCE abc", "1: LICENCE needs a number"),
            ("LICENCE 0", "1: licence number 0 is out of range"),
            ("LICENCE 1\nLIC_TYPE 3", "2: LIC_TYPE: LIC_TYPE is 1 (ASP-FULL) or 9"),
            ("LICENCE 1\nEXPIRATION_DATE soon", "2: EXPIRATION_DATE: expected a date"),
            ("LICENCE 1\nOPERATORS_COUNT_CC -1", "2: OPERATORS_COUNT_CC: -1 is negative"),
            ("LICENCE 1\nLANGUAGE de", "2: LANGUAGE: LANGUAGE is one of en, pl"),
            ("LICENCE 1\nCOLOUR red", "2: unknown key COLOUR"),
            ("LICENCE 1\nLICENCE 1", "2: licence 1 is listed twice"),
        ]
        for text, expected in cases:
            with self.assertRaises(ConfigError, msg=text) as caught:
                parseLicenceFile(text.splitlines(), "f")
            self.assertIn("f:" + expected, str(caught.exception))

    def test_dates(self) -> None:
        """A bare date means the end of that day, UTC."""
        self.assertEqual(parseDate("2027-12-31"), 1830297599000)
        self.assertEqual(parseDate("2027-12-31 23:59:59"), 1830297599000)

    def test_missingFile(self) -> None:
        """A licence file that cannot be read is a clear error."""
        with self.assertRaises(ConfigError) as caught:
            readLicenceFile(self.mktemp())
        self.assertIn("cannot read the licence file", str(caught.exception))


class ExampleTests(unittest.TestCase):
    def test_exampleParses(self) -> None:
        """etc/lc_licence.cfg.example is a valid licence file."""
        import os

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        result = readLicenceFile(os.path.join(root, "etc", "lc_licence.cfg.example"))
        self.assertEqual(result[0]["number"], 123456)
        self.assertEqual(result[0]["seats_cc"], 10)
