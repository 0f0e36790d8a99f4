"""
One livechat process against two processes sharing Redis, on one machine:
the relay rate and latency of visitor -> agent -> visitor messages.

    python bench/cluster.py                          # 3 interleaved rounds of 20 s per set-up
    python bench/cluster.py --seconds 10 --rounds 1 --visitors 40 --window 2
    python bench/cluster.py --database mysql://root@127.0.0.1:3306/

The set-ups, each on a fresh database on the same MariaDB (BENCH_DATABASE
or --database; the machine's by default), with the same visitors, agents
and traffic:

  one        one node, no Redis (the in-memory bus)
  one+redis  one node with REDIS (the cluster's code paths, one process)
  two        two nodes with REDIS (a private redis-server on a free port)

Two agents (operators of licence 100) run as echo bots inside the nodes
(bench/cluster_node.tac): in "two" one agent on each node, in the others
both on the one node.  The visitors are driven by a load generator in its
own process (``bench/cluster.py load ...``, Twisted + Autobahn), spread
evenly over the nodes' WebSockets; each visitor asks for a chat, which
the router gives to the less loaded agent (so in "two" about half the
chats cross nodes), then keeps --window messages in flight: it sends "n",
the agent answers "echo:n", and the round trip's time is measured from the
send to the echo's arrival.  Every message (the visitor's and the echo) is
stored in MariaDB before it is relayed.

Prints one JSON line per round and set-up (round trips per second, p50 and
p99 in ms, the CPU seconds per second each process used), and a summary
with the medians and the ratio two / one.  docs/benchmarks.md ("Cluster")
has the numbers of one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
AGENTS = ("agent1", "agent2")


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpuSeconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pidOf(name: str) -> int | None:
    out = subprocess.run(["pidof", name], capture_output=True, text=True).stdout.split()
    return int(out[0]) if out else None


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

    @property
    def pid(self) -> int:
        return self.p.pid

    def waitFor(self, pattern: str, timeout: float = 600) -> Any:
        import re

        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        assert self.p.stdout is not None
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"process ended before {pattern!r}:\n" + "".join(self.lines[-40:])
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
                self.p.wait(30)


def dropDatabases(url: str, prefix: str) -> None:
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(url)
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


def startRedis(directory: str) -> tuple[Proc, str]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = freePort()
    redis = Proc(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ]  # fmt: skip
    )
    redis.waitFor(r"Ready to accept connections", 30)
    return redis, f"redis://127.0.0.1:{port}/0?prefix=bench:"


def startNode(directory: str, database: str, redis: str, agents: list[str], setup: bool) -> Any:
    port = freePort()
    node = Proc(
        [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "-y", HERE + "/cluster_node.tac"],
        {
            "BENCH_DIR": directory,
            "BENCH_PORT": str(port),
            "BENCH_DATABASE": database,
            "BENCH_REDIS": redis,
            "BENCH_SECRET": SECRET,
            "BENCH_ORIGIN": ORIGIN,
            "BENCH_AGENTS": ",".join(agents),
            "BENCH_ALL_AGENTS": ",".join(AGENTS),
            "BENCH_SETUP": "1" if setup else "0",
        },
    )
    node.waitFor(r"bench node ready", 120)
    return node, port


def runSetup(kind: str, database: str, args: argparse.Namespace, index: int) -> dict[str, Any]:
    """Start the set-up C{kind}, drive it with the load generator, stop it."""
    directory = tempfile.mkdtemp(prefix="lc-bench-cluster-")
    prefix = f"benchcl_{os.getpid()}_{index}_{kind.replace('+', '')}_"
    url = database.rstrip("/") + "/?prefix=" + prefix
    procs: list[Proc] = []
    try:
        redis = ""
        if kind != "one":
            redisProc, redis = startRedis(directory)
            procs.append(redisProc)
        if kind == "two":
            placement = [[AGENTS[0]], [AGENTS[1]]]
        else:
            placement = [list(AGENTS)]
        ports = []
        nodes = []
        for i, agents in enumerate(placement):
            node, port = startNode(f"{directory}/node{i}", url, redis, agents, setup=i == 0)
            procs.append(node)
            nodes.append(node)
            ports.append(port)
        urls = ",".join(f"ws://127.0.0.1:{p}/ws?licence=100" for p in ports)
        load = Proc(
            [
                sys.executable,
                os.path.abspath(__file__),
                "load",
                urls,
                str(args.visitors),
                str(args.window),
                str(args.seconds),
                str(args.warmup),
                args.routing,
                args.relay,
            ]
        )
        procs.append(load)
        load.waitFor(r"measuring", 300)
        watched = {f"node{i + 1}": n.pid for i, n in enumerate(nodes)}
        watched["load"] = load.pid
        if kind != "one":
            watched["redis"] = procs[0].pid
        mariadb = pidOf("mariadbd")
        if mariadb:
            watched["mariadb"] = mariadb
        before = {name: cpuSeconds(pid) for name, pid in watched.items()}
        started = time.monotonic()
        result = json.loads(load.waitFor(r"^(\{.*\})$", args.seconds + 300).group(1))
        took = time.monotonic() - started
        cpu = {
            name: round((cpuSeconds(pid) - before[name]) / took, 2) for name, pid in watched.items()
        }
        result.update({"setup": kind, "round": index, "cpu_per_s": cpu})
        print(json.dumps(result), flush=True)
        return result
    finally:
        for proc in reversed(procs):
            proc.stop()
        dropDatabases(database, prefix)
        shutil.rmtree(directory, ignore_errors=True)


def orchestrate(args: argparse.Namespace) -> None:
    database = args.database or os.environ.get("BENCH_DATABASE", "mysql://root@127.0.0.1:3306/")
    print(
        json.dumps(
            {
                "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
                "python": platform.python_version(),
                "database": database,
                "visitors": args.visitors,
                "window": args.window,
                "seconds": args.seconds,
                "routing": args.routing,
                "relay": args.relay,
            }
        ),
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {k: [] for k in args.setups}
    for r in range(args.rounds):
        for kind in args.setups:
            results[kind].append(runSetup(kind, database, args, r))
    print("\nsummary (medians of the rounds):")
    summary = {}
    for kind, rounds in results.items():
        summary[kind] = {
            "round_trips_per_s": round(statistics.median(x["round_trips_per_s"] for x in rounds)),
            "p50_ms": round(statistics.median(x["p50_ms"] for x in rounds), 1),
            "p99_ms": round(statistics.median(x["p99_ms"] for x in rounds), 1),
        }
        print(f"  {kind:10} {json.dumps(summary[kind])}")
    if "one" in summary and "two" in summary:
        ratio = summary["two"]["round_trips_per_s"] / max(1, summary["one"]["round_trips_per_s"])
        print(f"  two / one: {ratio:.2f}x")
    if "one+redis" in summary and "two" in summary:
        base = max(1, summary["one+redis"]["round_trips_per_s"])
        print(f"  two / one+redis: {summary['two']['round_trips_per_s'] / base:.2f}x")


# -- the load generator (its own process) ---------------------------------------------


def load(
    urls: list[str],
    visitors: int,
    window: int,
    seconds: float,
    warmup: float,
    routing: str,
    what: str,
) -> None:
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.dirname(HERE))
    from twisted.internet import defer, reactor, task
    from wsload import Client, connect  # type: ignore[import-not-found]

    from livechat.visitortoken import VisitorTokens

    tokens = VisitorTokens(SECRET.encode(), reactor, 86400.0)
    state: dict[str, Any] = {"measuring": False, "done": 0, "latencies": []}

    async def visitor(i: int) -> tuple[Client, int]:
        client = await connect(urls[i % len(urls)], ORIGIN)
        welcome = await client.ask("hello", token=tokens.issue(100, f"cl-visitor-{i:06d}"))
        if welcome.get("type") != "welcome":
            raise RuntimeError(str(welcome))
        joined: defer.Deferred[Any] = defer.Deferred()
        client.waiting["join"] = joined
        # local: visitor i asks group i % 2 + 1, whose agent is on the node of its socket
        group = i % len(AGENTS) + 1 if routing == "local" else None
        answer = await client.ask("chat.request", message="hello", group=group)
        if answer.get("type") != "reply":
            raise RuntimeError(str(answer))
        await joined
        return client, answer["result"]["chatId"]

    def drive(client: Client, chatId: int) -> None:
        if what == "state":
            driveStates(client, chatId)
            return
        sentAt: dict[str, float] = {}
        counter = [0]

        def send() -> None:
            counter[0] += 1
            text = f"{client.n}-{counter[0]}"
            sentAt[text] = time.monotonic()
            client.ask("chat.send", chatId=chatId, text=text)

        def onEvent(payload: bytes) -> bool:
            if b'"echo:' not in payload:
                return False
            message = json.loads(payload)
            event = message.get("event", {})
            text = event.get("message", "")
            if event.get("type") != "ContentEvent" or not text.startswith("echo:"):
                return False
            t0 = sentAt.pop(text[5:], None)
            if t0 is not None:
                done(t0)
                send()
            return True

        client.onEvent = onEvent
        for _ in range(window):
            send()

    def driveStates(client: Client, chatId: int) -> None:
        """Typing states (relayed, never stored), one in flight per visitor."""
        sentAt = [0.0]
        states = ("COMPOSING", "PAUSE")

        def send() -> None:
            sentAt[0] = time.monotonic()
            state = states[client.n % 2]
            client.ask("chat.state", chatId=chatId, state=state)

        def onEvent(payload: bytes) -> bool:
            if b'"ChatStateEvent"' not in payload or b'"originatorId":"op:' not in payload:
                return False
            done(sentAt[0])
            send()
            return True

        client.onEvent = onEvent
        send()

    def done(t0: float) -> None:
        if state["measuring"]:
            state["done"] += 1
            state["latencies"].append(time.monotonic() - t0)

    async def run(_: Any) -> None:
        sem = defer.DeferredSemaphore(20)
        chats = await defer.gatherResults(
            [sem.run(lambda i=i: defer.ensureDeferred(visitor(i))) for i in range(visitors)]
        )
        for client, chatId in chats:
            drive(client, chatId)
        await task.deferLater(reactor, warmup, lambda: None)
        print("measuring", flush=True)
        state["measuring"] = True
        start = time.monotonic()
        await task.deferLater(reactor, seconds, lambda: None)
        state["measuring"] = False
        took = time.monotonic() - start
        latencies = sorted(state["latencies"])

        def pct(p: float) -> float:
            return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)

        print(
            json.dumps(
                {
                    "round_trips_per_s": round(state["done"] / took),
                    "stored_per_s": round(2 * state["done"] / took) if what == "message" else 0,
                    "p50_ms": pct(0.50) if latencies else None,
                    "p99_ms": pct(0.99) if latencies else None,
                    "visitors": visitors,
                    "window": window,
                }
            ),
            flush=True,
        )

    task.react(lambda r: defer.ensureDeferred(run(r)))


def main(argv: list[str]) -> None:
    if argv and argv[0] == "load":
        urls = argv[1].split(",")
        load(urls, int(argv[2]), int(argv[3]), float(argv[4]), float(argv[5]), argv[6], argv[7])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database", help="MariaDB URL (default $BENCH_DATABASE or root@127.0.0.1)"
    )
    parser.add_argument("--visitors", type=int, default=40)
    parser.add_argument("--window", type=int, default=2, help="messages in flight per visitor")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--relay",
        choices=("message", "state"),
        default="message",
        help="message: chat messages (stored, then relayed); state: typing states "
        "(relayed only, one in flight per visitor), the fan-out without the database",
    )
    parser.add_argument(
        "--routing",
        choices=("any", "local"),
        default="any",
        help="any: the router picks the agent (about half the chats cross nodes); "
        "local: each visitor asks the group of the agent on its own node",
    )
    parser.add_argument(
        "--setups", default="one,one+redis,two", help="comma-separated: one, one+redis, two"
    )
    args = parser.parse_args(argv)
    args.setups = [s for s in args.setups.split(",") if s]
    orchestrate(args)


if __name__ == "__main__":
    main(sys.argv[1:])
