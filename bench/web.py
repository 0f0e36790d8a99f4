"""
The web side's benchmarks, each against a baseline measured in the same run
(every server in a process of its own, on loopback):

    python bench/web.py monitor [SECONDS]      page views (wrk) vs a bare twisted.web resource,
                                               3 interleaved rounds of SECONDS (5) each
    python bench/web.py idle [CONNECTIONS]     RSS per idle widget WebSocket
    python bench/web.py relay [MESSAGES]       visitor -> agent over WebSocket vs an Autobahn echo
    python bench/web.py all

BENCH_DATABASE=mysql://root@127.0.0.1:3306/?prefix=bench_ runs the node on
MariaDB instead of sqlite (the relay then commits on several connections).

Needs wrk (Debian: apt-get install wrk) for `monitor`.  Prints one line of
JSON per measurement and a summary; docs/benchmarks.md has the numbers of
one machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = "bench secret " * 4
ORIGIN = "http://bench.example"
TOKENS = 1000
ROUNDS = 3
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpuSeconds(pid: int) -> float:
    """User and system CPU time a process has used so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Proc:
    """A child process whose output lines we can wait for."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        environment = dict(os.environ)
        environment.update(env or {})
        self.p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
        )
        self.lines: list[str] = []

    def waitFor(self, pattern: str, timeout: float = 600) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        assert self.p.stdout is not None
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"process ended before {pattern!r}:\n" + "".join(self.lines[-30:])
                )
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match
        raise RuntimeError(f"no {pattern!r} in time")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()


def startNode(directory: str, **env: str) -> tuple[Proc, int]:
    port = freePort()
    node = Proc(
        [
            sys.executable,
            "-c",
            TWISTD,
            "-n",
            "--pidfile=",
            "-y",
            os.path.join(HERE, "web_node.tac"),
        ],
        {
            "BENCH_DIR": directory,
            "BENCH_PORT": str(port),
            "BENCH_SECRET": SECRET,
            "BENCH_ORIGIN": ORIGIN,
            **env,
        },
    )
    node.waitFor(r"bench node ready", 120)
    return node, port


def wrkScript(path: str) -> None:
    """A wrk Lua script: POST page views of TOKENS returning visitors, in turn."""
    sys.path.insert(0, os.path.dirname(HERE))
    from livechat.visitortoken import VisitorTokens

    class Clock:
        def seconds(self) -> float:
            return time.time()

    tokens = VisitorTokens(SECRET.encode(), Clock(), 86400.0 * 365)
    bodies = []
    for i in range(TOKENS):
        body = {
            "licence": 100,
            "token": tokens.issue(100, f"page-visitor-{i:08d}"),
            "url": f"https://bench.example/shop/item/{i}",
            "title": "An item of the shop",
            "referrer": "https://search.example/?q=item",
            "group": None,
            "lang": "en",
        }
        bodies.append(json.dumps(body))
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f'wrk.headers["Origin"] = "{ORIGIN}"\n')
        f.write('wrk.headers["Content-Type"] = "text/plain"\n')
        f.write('wrk.headers["User-Agent"] = "Mozilla/5.0 (bench) Chrome/120"\n')
        f.write("bodies = {\n")
        for body in bodies:
            f.write("  [==[" + body + "]==],\n")
        f.write("}\ni = 0\n")
        f.write(
            "request = function()\n  i = i % #bodies + 1\n"
            '  return wrk.format(nil, "/livesupport/monitor", nil, bodies[i])\nend\n'
        )


def wrk(url: str, script: str, seconds: int, connections: int = 64) -> dict[str, Any]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    return {
        "requests_per_s": rate,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "p99": p99.group(1) if p99 else None,
    }


def dropBenchDatabases() -> None:
    """With BENCH_DATABASE on MariaDB, drop the databases the run made (its ?prefix=)."""
    url = os.environ.get("BENCH_DATABASE", "")
    if not url.startswith(("mysql:", "mariadb:")):
        return
    from urllib.parse import parse_qsl, urlsplit

    import pymysql

    parts = urlsplit(url)
    prefix = dict(parse_qsl(parts.query)).get("prefix", "")
    if not prefix:
        return
    conn = pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                (prefix.replace("_", "\\_") + "%",),
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP DATABASE `{name}`")
    finally:
        conn.close()


def benchMonitor(seconds: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench/web.py monitor needs wrk: apt-get install wrk")
    directory = tempfile.mkdtemp()
    script = os.path.join(directory, "pageviews.lua")
    wrkScript(script)
    barePort = freePort()
    bare = Proc([sys.executable, os.path.join(HERE, "bare.py"), "web", str(barePort)])
    node = None
    try:
        bare.waitFor("web ready")
        node, port = startNode(os.path.join(directory, "data"))
        wrk(f"http://127.0.0.1:{port}", script, 3)  # the visitors' first visits (DB rows)
        wrk(f"http://127.0.0.1:{barePort}", script, 2)
        # Interleaved rounds, so a busy neighbour on the machine weighs on both alike.
        bares, monitors = [], []
        for _ in range(ROUNDS):
            bares.append(wrk(f"http://127.0.0.1:{barePort}", script, seconds))
            monitors.append(wrk(f"http://127.0.0.1:{port}", script, seconds))
        bareRate = statistics.median(r["requests_per_s"] for r in bares)
        monitorRate = statistics.median(r["requests_per_s"] for r in monitors)
        result = {
            "bench": "monitor",
            "rounds": ROUNDS,
            "seconds_each": seconds,
            "bare_per_s": [r["requests_per_s"] for r in bares],
            "monitor_per_s": [r["requests_per_s"] for r in monitors],
            "monitor_non_2xx": sum(r["non_2xx"] for r in monitors),
            "monitor_p99": [r["p99"] for r in monitors],
            "bare_median": bareRate,
            "monitor_median": monitorRate,
            "ratio": round(monitorRate / bareRate, 3),
        }
        print(json.dumps(result), flush=True)
        return result
    finally:
        if node is not None:
            node.stop()
        bare.stop()


def benchIdle(connections: int) -> dict[str, Any]:
    directory = tempfile.mkdtemp()
    node, port = startNode(os.path.join(directory, "data"))
    url = f"ws://127.0.0.1:{port}/ws?licence=100"
    try:
        # Warm up every code path (and the allocator) with a few connections first.
        warm = Proc(
            [sys.executable, os.path.join(HERE, "wsload.py"), "idle", url, ORIGIN, SECRET, "200"]
        )
        warm.waitFor(r"connected (\d+)")
        warm.p.stdin.close()  # type: ignore[union-attr]
        warm.p.wait(60)
        time.sleep(2)  # let the server notice the 200 closes
        before = rss(node.p.pid)
        load = Proc(
            [
                sys.executable,
                os.path.join(HERE, "wsload.py"),
                "idle",
                url,
                ORIGIN,
                SECRET,
                str(connections),
            ]
        )
        match = load.waitFor(r"connected (\d+) in ([\d.]+) s", 1200)
        time.sleep(5)  # idle: heartbeats only
        after = rss(node.p.pid)
        result = {
            "bench": "idle",
            "connections": int(match.group(1)),
            "connect_seconds": float(match.group(2)),
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1),
            "kib_per_connection": round((after - before) / int(match.group(1)) / 1024, 2),
        }
        print(json.dumps(result), flush=True)
        load.p.stdin.close()  # type: ignore[union-attr]
        load.p.wait(120)
        return result
    finally:
        node.stop()


def benchRelay(messages: int, window: int = 16, visitors: int = 8) -> dict[str, Any]:
    directory = tempfile.mkdtemp()
    echoPort = freePort()
    echo = Proc([sys.executable, os.path.join(HERE, "bare.py"), "echo", str(echoPort)])
    node = None
    try:
        echo.waitFor("echo ready")
        node, port = startNode(
            os.path.join(directory, "data"), BENCH_AGENT="1", BENCH_EXPECT=str(messages)
        )
        # Interleaved rounds, so a busy neighbour on the machine weighs on both
        # alike; each relay round with visitors (and chats) of its own.
        echoes, relays = [], []
        for number in range(ROUNDS):
            echoes.append(echoRound(echo, echoPort, messages, window, visitors))
            relays.append(relayRound(node, port, number, messages, window, visitors))
        echoRate = statistics.median(e["per_s"] for e in echoes)
        relayRate = statistics.median(r["per_s"] for r in relays)
        result = {
            "bench": "relay",
            "rounds": ROUNDS,
            "messages": messages,
            "window": window,
            "visitors": visitors,
            "echo_per_s": [e["per_s"] for e in echoes],
            "relay_per_s": [r["per_s"] for r in relays],
            "echo_median": echoRate,
            "relay_median": relayRate,
            "ratio": round(relayRate / echoRate, 3),
            "echo_cpu_us_per_msg": [e["cpu_us_per_msg"] for e in echoes],
            "node_cpu_us_per_msg": [r["cpu_us_per_msg"] for r in relays],
        }
        print(json.dumps(result), flush=True)
        return result
    finally:
        if node is not None:
            node.stop()
        echo.stop()


def echoRound(echo: Proc, port: int, messages: int, window: int, visitors: int) -> dict[str, Any]:
    """One run of the raw echo: its rate and the echo server's CPU per message."""
    cpu = cpuSeconds(echo.p.pid)
    run = Proc(
        [
            sys.executable,
            os.path.join(HERE, "wsload.py"),
            "echo",
            f"ws://127.0.0.1:{port}/ws",
            str(messages),
            str(window),
            str(visitors),
        ]
    )
    echoed = json.loads(run.waitFor(r"(\{.*\})").group(1))
    cpu = cpuSeconds(echo.p.pid) - cpu
    return {
        "per_s": round(echoed["messages"] / echoed["seconds"]),
        "cpu_us_per_msg": round(cpu / echoed["messages"] * 1e6, 1),
    }


def relayRound(
    node: Proc, port: int, number: int, messages: int, window: int, visitors: int
) -> dict[str, Any]:
    """One run of the relay: messages stored and received by the agent per second."""
    cpu = cpuSeconds(node.p.pid)
    run = Proc(
        [
            sys.executable,
            os.path.join(HERE, "wsload.py"),
            "relay",
            f"ws://127.0.0.1:{port}/ws?licence=100",
            ORIGIN,
            SECRET,
            str(visitors),
            str(messages),
            str(window),
            f"r{number}",
        ]
    )
    sent = json.loads(run.waitFor(r"(\{.*\})").group(1))
    agent = json.loads(node.waitFor(r"agent received (\{.*\})").group(1))
    cpu = cpuSeconds(node.p.pid) - cpu
    return {
        "per_s": round(agent["count"] / max(agent["seconds"], sent["seconds"])),
        "cpu_us_per_msg": round(cpu / agent["count"] * 1e6, 1),
    }


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "all"
    arg = int(argv[1]) if len(argv) > 1 else None
    results = []
    if what in ("monitor", "all"):
        results.append(benchMonitor(arg or 5))
    if what in ("idle", "all"):
        results.append(benchIdle(arg or 15000))
    if what in ("relay", "all"):
        results.append(benchRelay(arg or 20000))
    dropBenchDatabases()
    print("\nsummary:")
    for r in results:
        print(" ", json.dumps(r))


if __name__ == "__main__":
    main(sys.argv[1:])
