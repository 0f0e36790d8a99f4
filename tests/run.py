"""
Run livechat's tests against real MariaDB and Redis servers.

Usage, from the repository root::

    python -m tests.run                 # trial --jobs=N tests
    python -m tests.run [trial args]    # trial <args>, e.g. tests.test_services

Finds (or starts private) MariaDB and Redis servers with
L{tests.support.services}, exports C{LIVECHAT_TEST_MYSQL_URL},
C{LIVECHAT_TEST_REDIS_URL} and C{LIVECHAT_REQUIRE_SERVICES=1} (unless already
set) for trial and its workers, runs trial with this Python, stops any
private servers, and exits with trial's status.  C{LIVECHAT_TEST_JOBS} sets
the number of trial workers (default: min(4, CPUs)).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

from tests.support import services


def jobCount() -> int:
    """Trial workers: C{LIVECHAT_TEST_JOBS}, else min(4, CPU count)."""
    value = os.environ.get("LIVECHAT_TEST_JOBS", "").strip()
    if value:
        try:
            jobs = int(value)
        except ValueError:
            jobs = 0
        if jobs < 1:
            raise SystemExit(f"tests.run: LIVECHAT_TEST_JOBS={value!r} is not a positive integer")
        return jobs
    return min(4, os.cpu_count() or 1)


def trialCommand(args: list[str]) -> list[str]:
    """The trial command line: the given args, or the whole suite in parallel."""
    trial = [sys.executable, "-m", "twisted.trial"]
    if args:
        return trial + args
    return trial + [f"--jobs={jobCount()}", "tests"]


def _exitOnSignal(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into SystemExit so trial is killed and servers stopped."""
    raise SystemExit(128 + signum)


def main(args: list[str]) -> int:
    """Ensure the servers, run trial, clean up; return trial's exit status."""
    signal.signal(signal.SIGTERM, _exitOnSignal)
    command = trialCommand(args)
    os.environ.setdefault(services.REQUIRE_ENV, "1")
    try:
        for envVar, getURL in (
            (services.MYSQL_URL_ENV, services.mysqlURL),
            (services.REDIS_URL_ENV, services.redisURL),
        ):
            try:
                os.environ[envVar] = getURL()
            except services.ServiceUnavailable as e:
                if services.servicesRequired():
                    print(f"tests.run: {e}", file=sys.stderr)
                    return 2
                print(f"tests.run: warning, tests that need it will skip: {e}", file=sys.stderr)
        print(f"tests.run: using {services.describeServices()}", flush=True)
        return subprocess.call(command)
    finally:
        services.stopPrivateServers()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
