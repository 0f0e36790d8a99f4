"""
The website's signed visitor identity on the web path too: the page view
(C{POST /livesupport/monitor}) may carry C{identity} and C{signature},
verified with the same key file as IWCS0002C (livechat.identity).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.internet import defer
from twisted.trial import unittest

from livechat.identity import IdentityKeyFile, IdentityVerifier, sign
from tests.support.web import WebMixin, postJSON

SITE = "https://shop.example"


class MonitorIdentityTests(WebMixin, unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self) -> Any:
        yield super().setUp()
        yield self.allow(100, SITE)
        self.url = self.serve()
        self.key = ed25519.Ed25519PrivateKey.generate()
        self.front.identity = IdentityKeyFile(None, self.clock)
        self.front.identity.verifier = IdentityVerifier(self.key.public_key(), self.clock)
        _, _, first = yield self.monitor({"licence": 100})
        self.visitorId, self.token = first["visitorId"], first["token"]

    def monitor(self, body: Any) -> Any:
        return postJSON(self.url + "livesupport/monitor", body, {"Origin": SITE})

    def identity(self, signer: Any = None, **changes: Any) -> dict[str, Any]:
        claimed = {
            "name": "Vera",
            "email": "vera@example.com",
            "customer_id": "C-1001",
            "expires": int(self.clock.seconds()) + 300,
        }
        signed = dict(claimed, licence=100, visitor=self.visitorId)
        signature = sign(signer or self.key, signed)
        claimed.update(changes)
        return {"identity": claimed, "signature": signature}

    @defer.inlineCallbacks
    def test_signedIdentity(self) -> Any:
        """A good signature makes the visitor's name, e-mail and customer id trusted."""
        code, _, body = yield self.monitor({"licence": 100, "token": self.token, **self.identity()})
        self.assertEqual((code, body["verified"]), (200, True))
        state = yield self.core.presence.visitor(100, self.visitorId)
        self.assertEqual(
            (state.name, state.email, state.customer_id, state.verified),
            ("Vera", "vera@example.com", "C-1001", True),
        )

    @defer.inlineCallbacks
    def test_refused(self) -> Any:
        """
        Unsigned, forged, tampered and expired identities, and one signed for
        another visitor, are dropped: the page view counts, nothing is trusted.
        """
        other = ed25519.Ed25519PrivateKey.generate()
        unsigned = self.identity()
        del unsigned["signature"]
        expired = self.identity(expires=int(self.clock.seconds()) - 1)
        cases = [
            unsigned,
            self.identity(signer=other),
            self.identity(name="Mallory"),
            expired,
        ]
        for extra in cases:
            code, _, body = yield self.monitor({"licence": 100, "token": self.token, **extra})
            self.assertEqual((code, body["verified"]), (200, False), extra)
        # Signed for this visitor, sent with another visitor's token.
        _, _, second = yield self.monitor({"licence": 100})
        code, _, body = yield self.monitor(
            {"licence": 100, "token": second["token"], **self.identity()}
        )
        self.assertEqual((code, body["verified"]), (200, False))
        state = yield self.core.presence.visitor(100, self.visitorId)
        self.assertEqual((state.name, state.verified), ("", False))
        self.front.identity.verifier = None
        code, _, body = yield self.monitor({"licence": 100, "token": self.token, **self.identity()})
        self.assertEqual((code, body["verified"]), (200, False))

    @defer.inlineCallbacks
    def test_badShapes(self) -> Any:
        """Identity fields of the wrong type are a 400, and cost nothing."""
        for extra in (
            {"identity": "Vera", "signature": "x"},
            {"identity": {"name": 5}, "signature": "x"},
            {"identity": {"name": "x" * 201}, "signature": "x"},
            {"identity": {"expires": "soon"}, "signature": "x"},
            {"identity": {"name": "Vera"}, "signature": 7},
        ):
            code, _, body = yield self.monitor({"licence": 100, "token": self.token, **extra})
            self.assertEqual((code, body["code"]), (400, "bad_request"), extra)
