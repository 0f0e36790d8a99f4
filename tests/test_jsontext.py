"""L{livechat.jsontext}: JSON from outside, lone surrogates refused."""

from __future__ import annotations

import json

from twisted.trial import unittest

from livechat import jsontext


class LoadsTests(unittest.TestCase):
    def test_plainAndPairs(self) -> None:
        """Plain JSON, UTF-8 text and an escaped surrogate pair read as json.loads does."""
        for data in (
            b'{"a": [1, 2.5, null, true]}',
            '{"t": "Zażółć 😀"}'.encode(),
            b'{"t": "\\ud83d\\ude00 and \\u00e9"}',
            '{"t": "\\uD83D\\uDE00"}',
        ):
            self.assertEqual(jsontext.loads(data), json.loads(data))
        self.assertEqual(jsontext.loads(b'"\\ud83d\\ude00"'), "😀")

    def test_loneSurrogate(self) -> None:
        """A high or low surrogate alone, in a key or a value, is a ValueError."""
        for data in (
            b'{"t": "a\\ud800"}',
            b'{"t": "\\udfff b"}',
            b'{"\\uDC00": 1}',
            '["\\ud83d x"]',
            b'{"t": "\\ude00\\ud83d"}',
        ):
            self.assertRaises(ValueError, jsontext.loads, data)
        self.assertRaises(ValueError, jsontext.loads, b"{not json")
