"""
IWCS benchmarks against a real node (`twistd livechat` in a child process,
on loopback):

    python bench/iwcs.py relay [SECONDS]     throughput: visitors (through controls) -> agents,
                                             every message stored before it is acknowledged
    python bench/iwcs.py latency [RATE]      p50/p99 latency at a fixed rate (2000 msg/s)
    python bench/iwcs.py idle [CONNECTIONS]  RSS per idle logged-in IWCS connection (10000)
    python bench/iwcs.py all

Options: --agents N (4), --visitors M (64), --controls C (4), --window W
(outstanding messages per control, 32), --database mysql://root@127.0.0.1:3306/?prefix=bench_
(default: sqlite in a temporary directory).

The load generator is this process (one reactor, epoll); it uses
livechat.client to log in, ask for and accept the chats, then a fast path
that only looks for the packets it counts.  Latency is from the control
writing a message to the agent reading it (both in this process).  Prints
one line of JSON per measurement; docs/benchmarks.md has the numbers of
one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from twisted.internet import epollreactor  # noqa: E402

epollreactor.install()

from twisted.internet import defer, protocol, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

from livechat.client import IwcsClient, IwcsClientFactory  # noqa: E402
from livechat.model import OperatorStatus  # noqa: E402
from livechat.protocols import iwcspackets as P  # noqa: E402

LICENCE = 424242
PASSWORD = "bench password 0123456789"
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
ADMIN = (
    "import sys; from livechat.admin import main; sys.argv[0] = 'livechat-admin'; sys.exit(main())"
)
_TEXT = re.compile(rb"&text=b(\d+)")
_ID = re.compile(rb"IWCS0008S id=(\d+)")


def freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def cpuTime(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "system": platform.platform(),
        "load": os.getloadavg()[0],
    }


# -- the node -----------------------------------------------------------------------------


class Node:
    """A `twistd livechat` child with a licence, agents and a control key."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-iwcs-")
        self.port = freePort()
        self.common = ["--data-dir", self.dir]
        if args.database:
            self.common += ["--database", args.database]
        admin = [sys.executable, "-c", ADMIN, *self.common]
        subprocess.run(
            [
                *admin,
                "create-licence",
                "--number",
                str(LICENCE),
                "--admin-nick",
                "admin",
                "--admin-email",
                "admin@example.com",
            ],
            check=True,
            capture_output=True,
        )
        self.nicks = [f"agent{i}" for i in range(args.agents)]
        for nick in self.nicks:
            subprocess.run(
                [
                    *admin,
                    "create-operator",
                    str(LICENCE),
                    nick,
                    "--email",
                    f"{nick}@example.com",
                    "--password-stdin",
                ],
                input=PASSWORD,
                text=True,
                check=True,
                capture_output=True,
            )
        out = subprocess.run(
            [*admin, "create-api-key", str(LICENCE), "--scope", "control", "--name", "bench"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.key = re.search(r"lc_[0-9a-f]{12}_\S+", out).group(0)  # type: ignore[union-attr]
        settings = {
            "DEMO_LICENCE": "0",
            "IWCS_RATE": "100000",
            "IWCS_BURST": "100000",
            "IWCS_IDLE_TIMEOUT": "3600",
            "IWCS_MAX_VISITORS": "100000",
            "IWCS_SEND_BUFFER": "67108864",
            "MAX_CHATS_PER_AGENT": "1000",
            "MAX_VISITORS_PER_LICENCE": "1000000",
        }
        argv = [
            sys.executable,
            "-c",
            TWISTD,
            "-n",
            "--pidfile=",
            "livechat",
            *self.common,
            "--http",
            "tcp:0:interface=127.0.0.1",
            "--panel",
            "none",
            "--iwcs",
            f"tcp:{self.port}:interface=127.0.0.1:backlog=4096",
        ]
        for key, value in settings.items():
            argv += ["--set", f"{key}={value}"]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.dir
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 120
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            seen.append(line)
            if not line:
                raise RuntimeError("the node ended before listening:\n" + "".join(seen[-20:]))
            if "IWCS (agent applications, controls) listening on" in line:
                break
        self.pid = self.proc.pid
        # Drain its output in the background so it never blocks on a full pipe.
        reactor.callInThread(lambda: [None for _ in self.proc.stdout])  # type: ignore[union-attr]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- the clients ---------------------------------------------------------------------------


class Counter:
    def __init__(self) -> None:
        self.received = 0
        self.latencies: list[float] = []
        self.acked = 0
        self.measuring = False


class BenchAgent(IwcsClient):
    """Accepts every chat; once measuring, only reads the visitors' messages' times."""

    counter: Counter
    fast = False

    def chatRequested(self, offer: P.ChatOffered) -> None:
        self.accept(offer.chat).addCallback(lambda _: self.factory.accepted.append(offer.chat))

    def dataReceived(self, data: bytes) -> None:
        if not self.fast:
            return super().dataReceived(data)
        now = time.perf_counter_ns()
        counter = self.counter
        for match in _TEXT.finditer(data):
            if counter.measuring:
                counter.received += 1
                counter.latencies.append((now - int(match.group(1))) / 1e6)
        return None


class BenchControl(IwcsClient):
    """Sends the visitors' messages: a window of them, or at a given rate."""

    counter: Counter
    fast = False

    def start(self, chats: list[tuple[int, str]], window: int) -> None:
        self.fast = True
        self.chats = chats
        self.next = 0
        self.ids = 0
        for _ in range(window):
            self.sendOne()

    def sendOne(self) -> None:
        chat, visitor = self.chats[self.next % len(self.chats)]
        self.next += 1
        self.ids += 1
        stamp = time.perf_counter_ns()
        line = f"IWCS0020C id={self.ids}&chat={chat}&visitor={visitor}&text=b{stamp}\r\n"
        self.transport.write(line.encode())

    def dataReceived(self, data: bytes) -> None:
        if not self.fast:
            return super().dataReceived(data)
        acks = data.count(b"IWCS0008S ")
        counter = self.counter
        if counter.measuring:
            counter.acked += acks
        if self.window:
            for _ in range(acks):
                self.sendOne()
        return None

    window = 0


@defer.inlineCallbacks
def setUpChats(node: Node, args: argparse.Namespace, counter: Counter) -> Any:
    say(f"node {node.pid} on port {node.port}; logging in {len(node.nicks)} agents")
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", node.port)
    agents = []
    for nick in node.nicks:
        factory = IwcsClientFactory(
            LICENCE,
            nick=nick,
            password=PASSWORD,
            status=OperatorStatus.ONLINE,
            protocol=BenchAgent,
            clock=reactor,
            pingInterval=3600,
        )
        factory.accepted = []  # type: ignore[attr-defined]
        client = yield endpoint.connect(factory)
        client.counter = counter
        yield client.loggedIn()
        agents.append(client)
    controls = []
    for _ in range(args.controls):
        factory = IwcsClientFactory(
            LICENCE,
            kind="control",
            key=node.key,
            protocol=BenchControl,
            clock=reactor,
            pingInterval=3600,
        )
        client = yield endpoint.connect(factory)
        client.counter = counter
        yield client.loggedIn()
        controls.append(client)
    say(f"{len(controls)} controls in; asking for {args.visitors} chats")
    chats: dict[int, list[tuple[int, str]]] = {i: [] for i in range(len(controls))}
    for v in range(args.visitors):
        control = controls[v % len(controls)]
        visitor = f"bench-visitor-{v:06d}"
        yield control.reportVisitor(visitor, url=f"https://shop.example/{v}")
        chat = yield control.requestChat(visitor, name=f"V{v}", text="hello")
        chats[v % len(controls)].append((chat, visitor))
    while sum(len(a.factory.accepted) for a in agents) < args.visitors:
        yield task.deferLater(reactor, 0.05)
    yield task.deferLater(reactor, 0.5)  # let the backlogs go out
    for agent in agents:
        agent.fast = True
    return agents, controls, chats


def say(text: str) -> None:
    print(f"# {text}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


@defer.inlineCallbacks
def relay(args: argparse.Namespace, seconds: float) -> Any:
    node = Node(args)
    try:
        counter = Counter()
        agents, controls, chats = yield setUpChats(node, args, counter)
        for i, control in enumerate(controls):
            control.window = args.window
            control.start(chats[i], args.window)
        yield task.deferLater(reactor, 2.0)  # warm up
        counter.measuring = True
        cpu0, t0, own0 = cpuTime(node.pid), time.monotonic(), cpuTime(os.getpid())
        yield task.deferLater(reactor, seconds)
        counter.measuring = False
        elapsed = time.monotonic() - t0
        cpu = cpuTime(node.pid) - cpu0
        own = cpuTime(os.getpid()) - own0
        for control in controls:
            control.window = 0
        result = {
            "bench": "relay",
            "database": "mysql" if args.database else "sqlite",
            "agents": args.agents,
            "visitors": args.visitors,
            "controls": args.controls,
            "window": args.window * args.controls,
            "seconds": round(elapsed, 2),
            "stored_acked_per_s": round(counter.acked / elapsed),
            "delivered_per_s": round(counter.received / elapsed),
            "p50_ms": round(percentile(counter.latencies, 0.50), 2),
            "p99_ms": round(percentile(counter.latencies, 0.99), 2),
            "node_cpu": round(cpu / elapsed, 2),
            "generator_cpu": round(own / elapsed, 2),
            "machine": machine(),
        }
        print(json.dumps(result), flush=True)
        return result
    finally:
        node.stop()


@defer.inlineCallbacks
def latency(args: argparse.Namespace, rate: float, seconds: float = 10.0) -> Any:
    node = Node(args)
    try:
        counter = Counter()
        agents, controls, chats = yield setUpChats(node, args, counter)
        for i, control in enumerate(controls):
            control.window = 0
            control.start(chats[i], 0)
        tick = 0.005
        perTick = rate * tick / len(controls)
        owed = [0.0] * len(controls)

        def send() -> None:
            for i, control in enumerate(controls):
                owed[i] += perTick
                while owed[i] >= 1:
                    owed[i] -= 1
                    control.sendOne()

        loop = task.LoopingCall(send)
        loop.start(tick)
        yield task.deferLater(reactor, 2.0)
        counter.measuring = True
        cpu0, t0, own0 = cpuTime(node.pid), time.monotonic(), cpuTime(os.getpid())
        yield task.deferLater(reactor, seconds)
        counter.measuring = False
        elapsed = time.monotonic() - t0
        cpu = cpuTime(node.pid) - cpu0
        own = cpuTime(os.getpid()) - own0
        loop.stop()
        result = {
            "bench": "latency",
            "database": "mysql" if args.database else "sqlite",
            "rate": rate,
            "delivered_per_s": round(counter.received / elapsed),
            "p50_ms": round(percentile(counter.latencies, 0.50), 2),
            "p99_ms": round(percentile(counter.latencies, 0.99), 2),
            "max_ms": round(max(counter.latencies or [0.0]), 2),
            "node_cpu": round(cpu / elapsed, 2),
            "generator_cpu": round(own / elapsed, 2),
            "machine": machine(),
        }
        print(json.dumps(result), flush=True)
        return result
    finally:
        node.stop()


class IdleLogin(protocol.Protocol):
    """A control that logs in and then says nothing (no keep-alive: IDLE_TIMEOUT is long)."""

    def connectionMade(self) -> None:
        self.transport.write(
            f"IWCS0001C licence={LICENCE}&kind=control&key={self.factory.key}\r\n".encode()
        )

    def dataReceived(self, data: bytes) -> None:
        if b"IWCS0001S" in data and not getattr(self, "welcomed", False):
            self.welcomed = True
            self.factory.welcomed += 1
            if self.factory.welcomed == self.factory.wanted:
                self.factory.done.callback(None)


@defer.inlineCallbacks
def idle(args: argparse.Namespace, connections: int) -> Any:
    node = Node(args)
    try:
        factory = protocol.ClientFactory()
        factory.protocol = IdleLogin
        factory.key = node.key  # type: ignore[attr-defined]
        factory.welcomed = 0  # type: ignore[attr-defined]
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", node.port)
        warm = 200
        factory.wanted = warm  # type: ignore[attr-defined]
        factory.done = defer.Deferred()  # type: ignore[attr-defined]
        for _ in range(warm):
            yield endpoint.connect(factory)
        yield factory.done  # type: ignore[attr-defined]
        yield task.deferLater(reactor, 2.0)
        before = rss(node.pid)
        factory.wanted = warm + connections  # type: ignore[attr-defined]
        factory.done = defer.Deferred()  # type: ignore[attr-defined]
        t0 = time.monotonic()
        batch = []
        for _ in range(connections):
            batch.append(endpoint.connect(factory))
            if len(batch) == 200:
                yield defer.gatherResults(batch)
                batch = []
        if batch:
            yield defer.gatherResults(batch)
        yield factory.done  # type: ignore[attr-defined]
        took = time.monotonic() - t0
        yield task.deferLater(reactor, 3.0)
        after = rss(node.pid)
        result = {
            "bench": "idle",
            "connections": connections,
            "logged_in": factory.welcomed - warm,  # type: ignore[attr-defined]
            "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": round(after / 2**20, 1),
            "kib_per_connection": round((after - before) / connections / 1024, 2),
            "login_seconds": round(took, 1),
            "machine": machine(),
        }
        print(json.dumps(result), flush=True)
        return result
    finally:
        node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["relay", "latency", "idle", "all"])
    parser.add_argument("amount", nargs="?", type=float)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--visitors", type=int, default=64)
    parser.add_argument("--controls", type=int, default=4)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    import faulthandler

    faulthandler.dump_traceback_later(float(os.environ.get("BENCH_DUMP", "0")) or 10**6)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def run() -> None:
        if args.what in ("relay", "all"):
            await relay(args, args.amount or 10.0 if args.what == "relay" else 10.0)
        if args.what in ("latency", "all"):
            await latency(args, args.amount or 2000.0 if args.what == "latency" else 2000.0)
        if args.what in ("idle", "all"):
            await idle(args, int(args.amount or 10000) if args.what == "idle" else 10000)

    def done(result: Any) -> None:
        if reactor.running:
            reactor.stop()

    def start() -> None:
        d = defer.ensureDeferred(run())
        d.addErrback(lambda f: (f.printTraceback(sys.stderr), None)[1])
        d.addBoth(done)

    reactor.callWhenRunning(start)
    reactor.run()


if __name__ == "__main__":
    main()
