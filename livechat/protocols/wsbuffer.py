"""
The bounded send buffer that every WebSocket of ours shares (the visitor's,
the agent's, the connector's): the socket's transport is the consumer of
what the protocol sends, what the transport cannot take waits in a queue,
and a reader that lets more than its limit wait is cut off — memory never
grows without bound for a slow client.
"""

from __future__ import annotations

import collections
import struct
from typing import Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket import USES_NVX
from autobahn.websocket.xormasker import create_xor_masker
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from livechat import jsontext

CLOSE_SERVER = 4000
"""Close code when the server ends a session (its reason says why)."""


_encode = jsontext.encoder(compact=True, ensureAscii=False)


def encode(message: dict[str, Any]) -> bytes:
    """One JSON message as the WebSockets send it (one encoder for all of them)."""
    return _encode(message).encode("utf-8")


_HEAD16 = struct.Struct("!BBH").pack
_HEAD64 = struct.Struct("!BBQ").pack

UNMASK_NATIVE = 2048
"""
Payload pieces from this size on are unmasked by Autobahn's masker when it
is NVX's (SIMD); its pure-Python one is slower than ours at every size.
"""


def unmask(data: bytes, mask: bytes, offset: int) -> bytes:
    """
    C{data}, a piece of a client's frame payload that starts C{offset} bytes
    into it, XORed with the frame's 4-byte C{mask} (RFC 6455, 5.3).

    Below L{UNMASK_NATIVE} bytes this is one XOR of two integers, about five
    times cheaper than making Autobahn's native masker for the frame (the
    usual chat message is a hundred bytes); above, the native masker's SIMD
    wins (without NVX, the integers do it all).
    """
    shift = offset & 3
    if shift:
        mask = mask[shift:] + mask[:shift]
    n = len(data)
    if n >= UNMASK_NATIVE and USES_NVX:
        return bytes(create_xor_masker(mask, n).process(data))
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


@implementer(IPushProducer)
class BoundedSender:
    """
    Mix in before C{WebSocketServerProtocol}.  Call L{registerAsProducer}
    once the socket is up and L{sendBounded} to send; define L{sendLimit}
    and L{tooSlow}.  While C{_burst} is set (a welcome and its backlog going
    out at once) the queue may pass the limit.
    """

    # Provided by the WebSocket protocol this mixes into.
    transport: Any
    state: int
    sendClose: Any

    _queue: collections.deque[bytes] | None = None
    _queued = 0
    _paused = False
    _burst = False
    _gone = False

    def sendLimit(self) -> int:
        """Bytes that may wait before the reader is cut off."""
        raise NotImplementedError

    def tooSlow(self, queued: int) -> None:
        """Say (log) that the reader is cut off with C{queued} bytes waiting."""

    # -- Autobahn's per-message path, without the parts we do not use --------------

    applyMask = False
    """
    Autobahn makes a native masker object per incoming frame when this is
    set (the protocol keeps a class value over the factory's); we unmask in
    L{onFrameData} instead.
    """

    def onFrameData(self, payload: bytes) -> bool | None:
        # Autobahn has counted the payload (its null masker's pointer is
        # past this piece) but left it masked.
        this: Any = self
        mask = this.current_frame.mask
        if mask is not None and payload:
            payload = unmask(payload, mask, this.current_frame_masker.pointer() - len(payload))
        return super().onFrameData(payload)  # type: ignore[misc,no-any-return]

    def dataReceived(self, data: bytes) -> None:
        # Autobahn's own formats a debug line (with its colour helpers) for
        # every read, whether debug logging is on or not.
        self._dataReceived(data)  # type: ignore[attr-defined]

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # Autobahn's own also formats a debug line for every write.  The
        # usual case (an open socket, nothing queued, no octet logging) is
        # the transport's write and the traffic count, as there; any other
        # case is Autobahn's.
        this: Any = self
        if (
            sync
            or chopsize
            or this.send_queue
            or this.logOctets
            or this.state != WebSocketServerProtocol.STATE_OPEN
        ):
            super().sendData(data, sync, chopsize)  # type: ignore[misc]
            return
        this.transport.write(data)
        this.trafficStats.outgoingOctetsWireLevel += len(data)

    def sendMessage(
        self,
        payload: bytes,
        isBinary: bool = False,
        fragmentSize: int | None = None,
        sync: bool = False,
        doNotCompress: bool = False,
    ) -> None:
        # Autobahn's holds what we send to the protocol's
        # maxMessagePayloadSize, which for us bounds only what a client may
        # send (an agent's welcome listing hundreds of visitors is larger
        # than any request).  The usual case (one unfragmented, uncompressed
        # frame) is framed here, with the counts Autobahn keeps; any other
        # case is Autobahn's, with the limit lifted for the call.
        this: Any = self
        if (
            (this._perMessageCompress is None or doNotCompress)
            and fragmentSize is None
            and not this.autoFragmentSize
            and not sync
            and not this.logFrames
            and not this.trackedTimings
            and this.state == WebSocketServerProtocol.STATE_OPEN
        ):
            n = len(payload)
            first = 0x82 if isBinary else 0x81
            if n <= 125:
                head = bytes((first, n))
            elif n <= 0xFFFF:
                head = _HEAD16(first, 126, n)
            else:
                head = _HEAD64(first, 127, n)
            stats = this.trafficStats
            stats.outgoingWebSocketMessages += 1
            stats.outgoingWebSocketFrames += 1
            stats.outgoingOctetsAppLevel += n
            stats.outgoingOctetsWebSocketLevel += n
            self.sendData(head + payload)
            return
        limit, this.maxMessagePayloadSize = this.maxMessagePayloadSize, 0
        try:
            super().sendMessage(payload, isBinary, fragmentSize, sync, doNotCompress)  # type: ignore[misc]
        finally:
            this.maxMessagePayloadSize = limit

    utf8validateIncoming = False
    """
    Autobahn validates text incrementally, through a native validator's
    Python wrapper, on every frame; we check a text message once it is
    whole, in L{onMessageEnd} (one C decode; messages are bounded by
    maxMessagePayloadSize anyway).
    """

    def onMessageEnd(self) -> None:
        # IWebSocketChannel.onMessageEnd.  Autobahn's also fires the
        # protocol's "message" observers, a gathered Deferred per message;
        # we register none, and keep no timings.
        this: Any = self
        if not this.failedByMe:
            payload = b"".join(this.message_data)
            this.message_data = None
            if not this.message_is_binary:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError as e:
                    # RFC 6455 8.1: fail the connection, 1007.
                    this._invalid_payload(f"invalid UTF-8 in a text message at octet {e.start}")
                    return
            this._onMessage(payload, this.message_is_binary)
        this.message_data = None

    def registerAsProducer(self) -> None:
        transport: Any = self.transport
        # twisted.web's channel was the transport's producer until the upgrade.
        try:
            transport.unregisterProducer()
        except Exception:
            pass
        transport.registerProducer(self, True)

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        send = self.sendMessage
        while self._queue and not self._paused and not self._gone:
            data = self._queue.popleft()
            self._queued -= len(data)
            send(data)
        if not self._queue:
            self._queue = None

    def stopProducing(self) -> None:
        self._gone = True
        self._queue = None
        self._queued = 0

    def sendBounded(self, data: bytes) -> None:
        """Send C{data} now, or queue it; cut the reader off when too much waits."""
        if self._gone or self.state != WebSocketServerProtocol.STATE_OPEN:
            return
        if not self._paused and not self._queue:
            self.sendMessage(data)
            return
        if self._queue is None:
            self._queue = collections.deque()
        self._queue.append(data)
        self._queued += len(data)
        if self._queued > self.sendLimit() and not self._burst:
            self.tooSlow(self._queued)
            self.stopProducing()
            transport: Any = self.transport
            transport.abortConnection()


class ChannelSocket(BoundedSender):
    """
    A WebSocket that is the C{IChannel} of a core session (the visitor's,
    the agent's): deliveries are encoded and sent bounded; while C{_held}
    is a list (the welcome is being made) they wait in it.
    """

    _held: list[dict[str, Any]] | None = None

    def _push(self, message: dict[str, Any]) -> None:
        self.sendBounded(encode(message))

    def deliver(self, message: dict[str, Any]) -> None:
        if self._held is not None:
            self._held.append(message)
            return
        self._push(message)

    def close(self, reason: str) -> None:
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            self.sendClose(CLOSE_SERVER, reason[:100])
