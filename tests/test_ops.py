"""The ops files in etc/ are valid for the tools that read them."""

from __future__ import annotations

import os
import shutil
import subprocess

from twisted.trial import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class HaproxyConfigTests(unittest.TestCase):
    def test_valid(self) -> None:
        """`haproxy -c` accepts etc/haproxy.cfg (with a throwaway certificate)."""
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(haproxy):
            if os.environ.get("LIVECHAT_REQUIRE_SERVICES") == "1":
                self.fail("haproxy is not installed (.ci/run installs it)")
            raise unittest.SkipTest("haproxy is not installed")
        from tests.support.tls import selfSignedPEM

        pem = os.path.abspath(self.mktemp())
        with open(pem, "wb") as f:
            f.write(selfSignedPEM())
        with open(os.path.join(ROOT, "etc", "haproxy.cfg")) as f:
            text = f.read().replace("/etc/haproxy/livechat.pem", pem)
        cfg = os.path.abspath(self.mktemp())
        with open(cfg, "w") as f:
            f.write(text)
        result = subprocess.run([haproxy, "-c", "-f", cfg], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
