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


class BytesTests(unittest.TestCase):
    def test_strictUTF8(self) -> None:
        """
        Bytes are read as UTF-8, strictly: a stray byte and a surrogate
        written out in UTF-8 form (which json.loads of bytes lets through)
        are ValueErrors, as an escaped lone surrogate is.
        """
        self.assertEqual(jsontext.loads('{"t": "é"}'.encode()), {"t": "é"})
        for data in (b'{"t": "\xff"}', b'{"t": "\xed\xa0\x80"}'):
            self.assertRaises(ValueError, jsontext.loads, data)


class EncoderTests(unittest.TestCase):
    VALUES = (
        {"type": "chat.event", "chatId": 5, "sequence": 7, "event": {"message": 'Zażółć 😀 "q"\n'}},
        {"b": 1, "a": [1, 2.5, None, True, False, -0.0, 1e300], "c": {"z": {}, "y": []}},
        ["a", 1, {"\u2028": "\x00\x1f"}],
        "just text \u00e9",
        3,
        None,
        {1: "int key", 2: float("inf")},
    )

    def test_sameAsTheStandardEncoder(self) -> None:
        """Each option set writes what json.JSONEncoder with the same options writes."""
        for compact in (False, True):
            for sortKeys in (False, True):
                for ensureAscii in (False, True):
                    encode = jsontext.encoder(
                        compact=compact, sortKeys=sortKeys, ensureAscii=ensureAscii
                    )
                    standard = json.JSONEncoder(
                        separators=(",", ":") if compact else (", ", ": "),
                        sort_keys=sortKeys,
                        ensure_ascii=ensureAscii,
                    )
                    for value in self.VALUES:
                        self.assertEqual(encode(value), standard.encode(value), value)

    def test_refusesWhatTheStandardRefuses(self) -> None:
        """Objects JSON has no form for raise TypeError, as json.dumps does."""
        encode = jsontext.encoder(compact=True)
        for value in ({"a": object()}, [b"bytes"], {(1, 2): "tuple key"}):
            self.assertRaises(TypeError, encode, value)
