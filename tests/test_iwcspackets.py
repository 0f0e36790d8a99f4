"""
The IWCS packets on bytes, with no connection: every packet class round
trips, every kind of bad line gives its error, secrets are masked, and every
message type of the core has its packets.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

import attr
from twisted.trial import unittest

from livechat.model import AcceptStatus, ChatState, OperatorStatus, Role
from livechat.protocols import iwcspackets as P

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sample(codec: P.Codec, name: str) -> Any:
    """A value of C{codec} that exercises the encoding."""
    if isinstance(codec, P.VisitorId):
        return "Zq3xY8bL-r1_T0k"
    if isinstance(codec, P.Token):
        return "r-7.a:b_c"
    if isinstance(codec, P.Bool):
        return True
    if isinstance(codec, P.Int):
        return max(codec.minimum, 42)
    if isinstance(codec, P.IntList):
        return (3, 4, 5)
    if isinstance(codec, P.IntMap):
        return {42: 7, 43: 0}
    if isinstance(codec, P.Choice):
        values = [v for v in codec.values if v]
        return codec.parse(values[-1])
    if isinstance(codec, P.Text):
        text = "Zażółć gęślą jaźń & a+b=c %20\r\nnext line"
        return text[: codec.maxLength] if codec.maxLength else text
    raise AssertionError(codec)


def full(cls: type[P.Packet]) -> P.Packet:
    """The packet with every field set."""
    values = {
        attribute: sample(codec, wireName) for attribute, wireName, codec, _ in cls.wireFields()
    }
    return cls(**values)


class RoundTripTests(unittest.TestCase):
    def test_everyPacket(self) -> None:
        """Every packet class, with every field set, reads back equal from its line."""
        packets = list(P.CLIENT_PACKETS.values()) + list(P.SERVER_PACKETS.values())
        self.assertGreaterEqual(len(packets), 50)
        for cls in packets:
            packet = full(cls)
            line = packet.toLine()
            self.assertTrue(line.endswith(b"\r\n"), cls)
            self.assertEqual(line.count(b"\n"), 1, cls)
            self.assertTrue(line.startswith(f"IWCS{cls.NUMBER:04d}{cls.DIRECTION} ".encode()))
            self.assertEqual(P.parseLine(line[:-2], cls.DIRECTION), packet, cls)

    def test_compiledWriter(self) -> None:
        """
        Each packet's compiled C{toText} writes what the generic loop of
        L{P.Packet.toText} writes, with every field, with only the required
        ones, and masked.
        """
        packets = list(P.CLIENT_PACKETS.values()) + list(P.SERVER_PACKETS.values())
        for cls in packets:
            self.assertIsNot(cls.toText, P.Packet.toText, cls)
            packet = full(cls)
            bare = cls(
                **{a: getattr(packet, a) for a, _, _, required in cls.wireFields() if required}
            )
            for p in (packet, bare):
                for mask in (False, True):
                    self.assertEqual(p.toText(mask=mask), P.Packet.toText(p, mask=mask), cls)
        login = P.Login(licence=1, kind="agent", nick="a", password="p w", version=1)
        self.assertIn("password=********", login.toText(mask=True))
        self.assertIn("password=p+w", login.toText())

    def test_minimal(self) -> None:
        """Only the required fields: optional ones are left off the line."""
        line = P.Ping().toLine()
        self.assertEqual(line, b"IWCS0004C\r\n")
        self.assertEqual(P.parseLine(b"IWCS0004C"), P.Ping())
        self.assertEqual(P.parseLine(b"IWCS0004C "), P.Ping())
        self.assertEqual(
            P.SendMessage(chat=42, text="Hi there").toLine(),
            b"IWCS0020C chat=42&text=Hi+there\r\n",
        )

    def test_formEncoding(self) -> None:
        """A + is a space (as HTML forms write it); %2B is a plus."""
        packet = P.parseLine(b"IWCS0020C chat=1&text=a+b%2Bc")
        self.assertEqual(packet.text, "a b+c")

    def test_typedFields(self) -> None:
        """Numbers, lists, maps, enums and booleans come out typed."""
        login = P.parseLine(
            b"IWCS0001C licence=123456&kind=agent&nick=anna&password=pw&status=3&resume=42:7,43:0"
        )
        self.assertEqual(login.licence, 123456)
        self.assertIs(login.status, OperatorStatus.TEXT_AVAILABLE)
        self.assertEqual(login.resume, {42: 7, 43: 0})
        read = P.parseLine(b"IWCS0022C chat=42&seqs=3,4&status=ACCEPT")
        self.assertEqual((read.seqs, read.status), ((3, 4), AcceptStatus.ACCEPT))
        state = P.parseLine(b"IWCS0021C chat=42&state=PAUSE")
        self.assertIs(state.state, ChatState.PAUSE)
        answer = P.parseLine(b"IWCS0016C visitor=visitor-0001&accept=0")
        self.assertIs(answer.accept, False)
        event = P.parseLine(b"IWCS0020S chat=1&seq=2&time=3&from=op:1&role=AGENT&text=x", "S")
        self.assertIs(event.role, Role.AGENT)


class ErrorTests(unittest.TestCase):
    def check(self, line: bytes, name: str, requestId: str | None = None) -> P.PacketError:
        with self.assertRaises(P.PacketError) as caught:
            P.parseLine(line)
        error = caught.exception
        self.assertEqual((error.name, error.requestId), (name, requestId), error)
        self.assertEqual(error.code, P.ERRORS[name])
        return error

    def test_malformed(self) -> None:
        """Lines that are not IWCS packets."""
        for line in (
            b"hello",
            b"IWCS20C chat=1",
            b"iwcs0020C chat=1",
            b"IWCS0020X chat=1",
            b"IWCS0020Cchat=1",
            b"IWCS0020C chat",
            b"IWCS0020C chat=1&&text=a",
            b"IWCS0020C Chat=1",
            b"\xff\xfe",
        ):
            self.check(line, "malformed")
        error = self.check(b"IWCS0020C id=9&chat=1&text=%zz", "malformed", "9")
        self.assertEqual(error.number, 20)
        self.check(b"IWCS0020C id=9&chat=1&text=%ff", "malformed", "9")

    def test_unknownPacket(self) -> None:
        """A number no packet has, or a server packet sent by a client."""
        error = self.check(b"IWCS0999C id=x", "unknown_packet", "x")
        self.assertEqual(error.number, 999)
        self.check(b"IWCS0020S chat=1", "unknown_packet")

    def test_missingField(self) -> None:
        error = self.check(b"IWCS0020C id=5&text=hello", "missing_field", "5")
        self.assertIn("chat", error.text)
        self.check(b"IWCS0001C licence=1", "missing_field")

    def test_badField(self) -> None:
        """Wrong types, out of range, unknown and repeated fields."""
        for line in (
            b"IWCS0020C id=1&chat=x&text=a",
            b"IWCS0020C id=1&chat=0&text=a",
            b"IWCS0020C id=1&chat=1.5&text=a",
            b"IWCS0020C id=1&chat=99999999999999999999&text=a",
            b"IWCS0003C id=1&status=6",
            b"IWCS0003C id=1&status=ONLINE",
            b"IWCS0021C id=1&chat=1&state=typing",
            b"IWCS0022C id=1&chat=1&seqs=1,x",
            b"IWCS0022C id=1&chat=1&seqs=0",
            b"IWCS0016C id=1&visitor=visitor-0001&accept=yes",
            b"IWCS0001C id=1&licence=1&kind=robot",
            b"IWCS0001C id=1&licence=1&kind=agent&resume=1:2,1:3",
            b"IWCS0001C id=1&licence=1&kind=agent&resume=12",
            b"IWCS0002C id=1&visitor=short",
            b"IWCS0002C id=1&visitor=has%20space%20in%20it",
            b"IWCS0020C id=1&chat=1&text=a&colour=red",
            b"IWCS0020C id=1&chat=1&chat=2&text=a",
        ):
            self.check(line, "bad_field", "1")
        # A bad id is not repeated (it cannot be).
        self.check(b"IWCS0020C id=no%20spaces&chat=1&text=a", "bad_field", None)

    def test_lengths(self) -> None:
        """A text field's limit is checked at its edge."""
        P.parseLine(b"IWCS0001C licence=1&kind=agent&nick=" + b"n" * 100)
        self.check(b"IWCS0001C licence=1&kind=agent&nick=" + b"n" * 101, "bad_field")
        P.parseLine(b"IWCS0004C id=" + b"i" * 64)
        self.check(b"IWCS0004C id=" + b"i" * 65, "bad_field")


class MaskTests(unittest.TestCase):
    def test_secretsMasked(self) -> None:
        """Passwords and keys never reach a log, parsed or not."""
        login = P.Login(licence=1, kind="control", key="lc_abc_secret", password="pw")
        text = login.toText(mask=True)
        self.assertNotIn("secret", text)
        self.assertNotIn("pw", text.replace("password", ""))
        self.assertIn("key=********", text)
        raw = "IWCS0001C licence=1&kind=agent&nick=anna&password=hunter2&monkey=1"
        masked = P.maskLine(raw)
        self.assertEqual(
            masked, "IWCS0001C licence=1&kind=agent&nick=anna&password=********&monkey=1"
        )
        self.assertEqual(P.maskLine("IWCS0001C password=x"), "IWCS0001C password=********")


class CoreMessagesTests(unittest.TestCase):
    def test_everyCoreMessageCarried(self) -> None:
        """Every message type the core sends is one IWCS carries."""
        core = "".join(
            open(p, encoding="utf-8").read()
            for p in glob.glob(os.path.join(ROOT, "livechat/core/*.py"))
        )
        types = set(re.findall(r'"type": "([a-z]+\.[a-z.]+|invitation)"', core))
        self.assertGreaterEqual(len(types), 15)
        self.assertLessEqual(types, set(P.CORE_MESSAGE_TYPES))

    def test_chatEvents(self) -> None:
        """The core's chat events become their packets, with the visitor for a control."""
        base = {
            "type": "chat.event",
            "licence": 1,
            "chatId": 42,
            "sequence": 7,
            "serverTimestamp": 1795316832824,
            "originatorId": "op:1",
            "originatorMetadata": {"id": "op:1", "role": "ASSIGNED_AGENT", "name": "Anna"},
        }
        anna = {"id": "op:1", "role": "ASSIGNED_AGENT", "name": "Anna"}
        bob = {"id": "op:2", "role": "ASSIGNED_AGENT", "name": "Bob"}
        cases = [
            (
                {"type": "ContentEvent", "contentType": "text/plain", "message": "Hi"},
                P.MessageEvent,
            ),
            ({"type": "AcceptStatusEvent", "status": "READ", "sequenceList": [5, 6]}, P.ReadEvent),
            ({"type": "JoinEvent", "participant": anna}, P.JoinEvent),
            ({"type": "LeaveEvent", "participant": anna, "reason": "transfer"}, P.LeaveEvent),
            (
                {
                    "type": "TransferEvent",
                    "from": anna,
                    "status": 1,
                    "toOperator": bob,
                    "toGroup": None,
                },
                P.TransferEvent,
            ),
            ({"type": "InviteEvent", "invited": bob}, P.InviteEvent),
            ({"type": "CloseEvent", "reason": "operator_closed"}, P.CloseEvent),
        ]
        for event, cls in cases:
            (packet,) = P.packetsFor({**base, "event": event}, "visitor-0001")
            self.assertIsInstance(packet, cls)
            self.assertEqual((packet.chat, packet.seq, packet.visitor), (42, 7, "visitor-0001"))
            self.assertEqual(P.parseLine(packet.toLine()[:-2], "S"), packet)
        (transfer,) = P.packetsFor({**base, "event": cases[4][0]})
        self.assertEqual(
            (transfer.to_operator, transfer.to_name, transfer.by_status),
            ("op:2", "Bob", OperatorStatus.AWAY),
        )
        state = {k: v for k, v in base.items() if k != "sequence"}
        (typing,) = P.packetsFor(
            {**state, "event": {"type": "ChatStateEvent", "chatState": "COMPOSING"}}
        )
        self.assertEqual((typing.seq, typing.state), (None, ChatState.COMPOSING))
        self.assertEqual(P.packetsFor({**base, "event": {"type": "SomethingNew"}}), [])
        self.assertEqual(P.packetsFor({"type": "something.new"}), [])

    def test_errorPacket(self) -> None:
        error = P.Error.of("line_too_long", "too long", "7", 20)
        self.assertEqual(attr.astuple(error), ("7", 414, "line_too_long", "too long", 20))


class QuotingTests(unittest.TestCase):
    def test_writtenValuesReadBack(self) -> None:
        """
        Every character (ASCII, Latin, controls, line separators, an emoji)
        and mixes read back as written; what is written has no character of
        the line itself (C{&}, C{=}, CR, LF, a bare C{%} or C{+} that is not a
        space), nor any that splits a line in some readers (U+2028, U+0085).
        """
        from urllib.parse import unquote_plus

        from livechat.protocols import iwcspackets as P

        samples = [chr(c) for c in range(0, 0x250)] + ["\u2028", "\u2029", "😀", "", "a b"]
        samples += ["x&y=z", "%41", "a+b", "visitor:v-1_2.3~x", "ab" + "ą" + "cd", "*,:@/"]
        samples += ["Zażółć gęślą jaźń & a+b=c %20\r\nnext line"]
        for value in samples:
            written = P.writeValue(value)
            self.assertEqual(unquote_plus(written, errors="strict"), value, repr(value))
            self.assertEqual(P.splitFields(f"text={written}"), [("text", value)], repr(value))
            self.assertEqual(written.splitlines(), [written] if written else [], repr(value))
            for bad in "&= \r\n\x00\x7f\x85":
                self.assertNotIn(bad, written, repr(value))
        self.assertEqual(P.writeValue("Où est ma commande?"), "Où+est+ma+commande?")
        self.assertEqual(P.writeValue("50% & 1+1=2"), "50%25+%26+1%2B1%3D2")
