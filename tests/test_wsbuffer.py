"""
The WebSockets' shared parts in wsbuffer: unmasking client frames (ours
below UNMASK_NATIVE bytes, Autobahn's native masker above), checked
against a plain byte-by-byte XOR, and through a real Autobahn server
protocol fed frames in pieces of every size.
"""

from __future__ import annotations

import base64
import os
import struct
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from livechat.protocols.wsbuffer import UNMASK_NATIVE, BoundedSender, unmask


def xor(data: bytes, mask: bytes, offset: int = 0) -> bytes:
    """RFC 6455 5.3, one byte at a time."""
    return bytes(b ^ mask[(offset + i) % 4] for i, b in enumerate(data))


def frame(opcode: int, payload: bytes, mask: bytes, fin: bool = True) -> bytes:
    """A client's frame, masked with C{mask}."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n <= 125:
        head += bytes([0x80 | n])
    elif n <= 0xFFFF:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + mask + xor(payload, mask)


class UnmaskTests(unittest.TestCase):
    def test_sizesAndOffsets(self) -> None:
        """
        Every size either side of UNMASK_NATIVE, and every offset into the
        mask, give what the byte-by-byte XOR gives.
        """
        mask = bytes([0x12, 0xA5, 0x00, 0xFF])
        for size in (0, 1, 2, 3, 4, 5, 100, UNMASK_NATIVE - 1, UNMASK_NATIVE, 70000):
            data = os.urandom(size)
            for offset in range(6):
                self.assertEqual(
                    unmask(data, mask, offset), xor(data, mask, offset), (size, offset)
                )

    def test_leadingZeros(self) -> None:
        """Zero bytes at either end survive the trip through integers."""
        mask = b"\x00\x00\x00\x00"
        self.assertEqual(unmask(b"\x00\x00ab\x00", mask, 0), b"\x00\x00ab\x00")
        mask = b"ab\x00c"
        self.assertEqual(unmask(xor(b"\x00\x00\x00", mask), mask, 0), b"\x00\x00\x00")


class Recorder(BoundedSender, WebSocketServerProtocol):
    def onConnect(self, request: Any) -> None:
        self.received: list[tuple[bytes, bool]] = []

    def onOpen(self) -> None:
        self.registerAsProducer()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.received.append((payload, isBinary))


class ServerTests(unittest.TestCase):
    def connect(self) -> tuple[Recorder, StringTransport]:
        factory = WebSocketServerFactory("ws://127.0.0.1/")
        factory.protocol = Recorder
        factory.setProtocolOptions(
            failByDrop=False, openHandshakeTimeout=0, closeHandshakeTimeout=0
        )
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        key = base64.b64encode(os.urandom(16))
        protocol.dataReceived(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n\r\n"
        )
        self.assertIn(b"101 Switching Protocols", transport.value())
        transport.clear()
        return protocol, transport

    def test_piecesOfEverySize(self) -> None:
        """
        Text and binary messages of sizes either side of UNMASK_NATIVE, one
        of them in three frames, read in pieces of 1, 3, 7 ... bytes (a
        piece may end anywhere in a header, a mask or a payload), arrive
        whole and unmasked.
        """
        text = ("zażółć gęślą jaźń " * 300).encode("utf-8")
        messages = [
            (b"", False),
            (b"x", False),
            (b'{"type": "chat.send", "text": "hello"}', False),
            (os.urandom(UNMASK_NATIVE - 1), True),
            (os.urandom(UNMASK_NATIVE + 1), True),
            (text, False),
        ]
        wire = b""
        for payload, isBinary in messages:
            wire += frame(2 if isBinary else 1, payload, os.urandom(4))
        # The text once more, in three frames with masks of their own.
        wire += frame(1, text[:1000], os.urandom(4), fin=False)
        wire += frame(0, text[1000:4000], os.urandom(4), fin=False)
        wire += frame(0, text[4000:], os.urandom(4))
        for step in (1, 3, 7, 64, 1000, len(wire)):
            protocol, _ = self.connect()
            for i in range(0, len(wire), step):
                protocol.dataReceived(wire[i : i + step])
            self.assertEqual(protocol.received, messages + [(text, False)], step)

    def test_pingPayloadUnmasked(self) -> None:
        """A ping's payload is unmasked too: the pong carries it back as sent."""
        protocol, transport = self.connect()
        protocol.dataReceived(frame(9, b"are you there", b"\x01\x02\x03\x04"))
        self.assertEqual(transport.value(), b"\x8a\x0dare you there")

    def test_badUTF8Refused(self) -> None:
        """
        A text message that is not UTF-8 (a bad byte, a code point cut off at
        the end, an encoded surrogate) fails the connection with 1007; a
        code point split across two frames is fine.
        """
        for bad in (b"ok \xff", b"ok \xc5", b"\xed\xa0\x80"):
            protocol, transport = self.connect()
            protocol.dataReceived(frame(1, bad, os.urandom(4)))
            self.assertEqual(protocol.received, [])
            close = transport.value()
            self.assertEqual(close[:1], b"\x88", bad)
            self.assertEqual(struct.unpack("!H", close[2:4])[0], 1007, bad)
        protocol, transport = self.connect()
        text = "łódź".encode()
        protocol.dataReceived(frame(1, text[:1], os.urandom(4), fin=False))
        protocol.dataReceived(frame(0, text[1:], os.urandom(4)))
        self.assertEqual(protocol.received, [(text, False)])
        self.assertEqual(transport.value(), b"")

    def test_framingEdges(self) -> None:
        """
        What we frame ourselves is what RFC 6455 says at each length edge
        (7-bit, 16-bit and 64-bit lengths), text and binary, unmasked, and
        counted in Autobahn's traffic figures.
        """
        for size in (0, 125, 126, 0xFFFF, 0x10000):
            for isBinary in (False, True):
                protocol, transport = self.connect()
                payload = os.urandom(size)
                protocol.sendMessage(payload, isBinary)
                wire = transport.value()
                self.assertEqual(wire[0], 0x82 if isBinary else 0x81)
                if size <= 125:
                    self.assertEqual(wire[1], size)
                    head = 2
                elif size <= 0xFFFF:
                    self.assertEqual(wire[1], 126)
                    self.assertEqual(struct.unpack("!H", wire[2:4])[0], size)
                    head = 4
                else:
                    self.assertEqual(wire[1], 127)
                    self.assertEqual(struct.unpack("!Q", wire[2:10])[0], size)
                    head = 10
                self.assertEqual(wire[head:], payload, (size, isBinary))
                stats = protocol.trafficStats
                self.assertEqual(
                    (stats.outgoingWebSocketMessages, stats.outgoingOctetsAppLevel),
                    (1, size),
                )
                self.assertEqual(stats.outgoingOctetsWireLevel, len(wire))
