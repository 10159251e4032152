"""`kapok demo`: a living community on this machine, in one command.

Starts the cloud (`kapok cloud serve`, SQLite in the demo's folder) and a
gateway agent (`kapok agent run`) as child processes, sets up the community
木棉花园 Kapok Gardens (buildings, units, a gateway, ~50 households with gas
and water meters, some electricity meters, home hubs and a water-quality
station), sends weeks of signed past readings through ingest so billing has
months to show, then runs the simulated nodes live against the agent over
CoAP, with incidents in the first minutes: a gas leak (the meter shuts its
valve, the gateway sounds the hub's siren, an alarm reaches the dashboard),
a water-quality excursion and a meter going silent. When Node and the
MicroPython WebAssembly port are installed, one more gas meter runs the real
firmware on a virtual board.

The demo's folder (default ~/.local/share/kapok/demo) keeps everything: run
it again and the same community carries on; --fresh starts over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from kapok.tools.errors import EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE, KapokError, fail

COMMUNITY = "木棉花园 Kapok Gardens"
GATEWAY_NAME = "东门机房 East gate"
STATE_FILE = "demo.json"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
TIMEZONE = "Asia/Shanghai"
VIRTUAL_ID = "vgm-0001"
# what happens in the first minutes, from when the community goes live
INCIDENTS = ("gas-leak@unit-3+10s~3m", "silent@wm-{last:04d}+30s", "quality@wq-1+40s~5m")


def default_folder() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "kapok" / "demo"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class Stopped(Exception):
    """Ctrl-C or SIGTERM during set-up."""


class Child:
    """A child process (cloud, agent) in a session of its own, so a Ctrl-C
    reaches the demo alone and the demo stops the children in order."""

    def __init__(self, name: str, args: list[str], log: Path, env: dict | None = None):
        self.name = name
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def last_words(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            for line in reversed(lines):
                if line.strip():
                    return line.strip()[:200]
        return f"exit status {self.proc.returncode}"


class Demo:
    def __init__(self, folder: Path, *, port: int, units: int, history_days: int, interval: float):
        self.folder = folder
        self.port = port
        self.units = units
        self.history_days = history_days
        self.interval = interval
        self.console = Console(stderr=True)
        self.out = Console(highlight=False)
        self.children: list[Child] = []
        self.base = f"http://127.0.0.1:{port}"
        self.state_path = folder / STATE_FILE
        self.record: dict = {}
        self.virtual = None
        self._virtual_thread: threading.Thread | None = None

    # -- the demo's own record: password, ids, what is done

    def load(self) -> None:
        if self.state_path.is_file():
            try:
                self.record = json.loads(self.state_path.read_text(encoding="utf-8"))
            except ValueError:
                raise KapokError(
                    f"{self.state_path} is damaged: start over with --fresh", EXIT_FAILED
                ) from None

    def save(self) -> None:
        tmp = self.state_path.with_name(STATE_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.record, f, indent=1, ensure_ascii=False)
        os.replace(tmp, self.state_path)

    def password(self) -> str:
        if "password" not in self.record:
            given = os.environ.get("KAPOK_ADMIN_PASSWORD")
            # letters and digits: easy to type, never taken for a command-line option
            alphabet = string.ascii_letters + string.digits
            made = "".join(secrets.choice(alphabet) for _ in range(16))
            self.record["password"] = given or made
            self.save()
        elif os.environ.get("KAPOK_ADMIN_PASSWORD") not in (None, self.record["password"]):
            self.console.print(
                "note: the admin password was set when this demo first ran; "
                "KAPOK_ADMIN_PASSWORD is not used (start over with --fresh)",
                markup=False,
            )
        return self.record["password"]

    # -- the community

    def plan(self):
        from kapok.tools.simulation.community import Plan

        n = self.units
        return Plan(gas=n, water=n, electricity=n // 3, quality=1, hubs=max(2, n // 10))

    def incidents(self) -> list[str]:
        # the silent meter: the fifth unit's water meter, or the last one of a small demo
        return [text.format(last=min(5, self.units)) for text in INCIDENTS]

    def virtual_spec(self):
        from kapok.tools.simulation.node import NodeSpec

        return NodeSpec(VIRTUAL_ID, "gas-meter", self.units + 1)

    # -- running

    def start_cloud(self) -> None:
        if port_taken(self.port):
            raise KapokError(
                f"port {self.port} is in use (another cloud or demo?): give another with --port",
                EXIT_USAGE,
            )
        data = self.folder / "cloud"
        env = {
            **os.environ,
            "KAPOK_DATA_DIR": str(data),
            "KAPOK_DB": f"sqlite:///{data / 'kapok.db'}",
            "KAPOK_ADMIN_PASSWORD": self.password(),
            "KAPOK_CHECK_SECONDS": "10",  # silent meters show up within the demo's minutes
        }
        cloud = Child(
            "cloud",
            [
                sys.executable,
                "-m",
                "kapok.cloud",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            self.folder / "cloud.log",
            env,
        )
        self.children.append(cloud)
        self._wait_healthy(cloud)

    def _wait_healthy(self, cloud: Child) -> None:
        import httpx

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not cloud.alive():
                raise KapokError(f"the cloud did not start: {cloud.last_words()}", EXIT_FAILED)
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.base + "/api/v1/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise KapokError(f"the cloud did not answer within {START_TIMEOUT_S:g} s", EXIT_UNAVAILABLE)

    def setup(self, admin, state) -> None:
        """The community, its gateway and its nodes (once)."""
        from kapok.tools.simulation import history
        from kapok.tools.simulation.community import provision

        if "community" not in self.record:
            self.record["community"] = admin.create_community(COMMUNITY, TIMEZONE)
            self.save()
        if "gateway" not in self.record:
            gw = admin.create_gateway(self.record["community"], GATEWAY_NAME)
            self.record["gateway"] = {"id": gw["id"], "token": gw["token"]}
            self.save()
        if not self.record.get("registered"):
            installed = history.install_time(self.history_days, now=time.time(), timezone=TIMEZONE)
            provision(
                admin,
                state,
                self.plan().nodes(),
                gateway=self.record["gateway"]["id"],
                interval=int(self.interval),
                installed_at=installed,
            )
            self.record["registered"] = True
            self.save()

    def start_agent(self) -> None:
        self.coap_port = free_port(socket.SOCK_DGRAM)
        agent = Child(
            "agent",
            [
                sys.executable,
                "-m",
                "kapok.edge_agent",
                "run",
                "--cloud",
                self.base,
                "--listen",
                f"127.0.0.1:{self.coap_port}",
                "--data",
                str(self.folder / "agent"),
                "--metrics",
                "off",
                "--registry-interval",
                "15",
            ],
            self.folder / "agent.log",
            # the token in the environment, not on a command line every user can read
            {**os.environ, "KAPOK_GATEWAY_TOKEN": self.record["gateway"]["token"]},
        )
        self.children.append(agent)

    def backfill(self, state) -> int:
        from kapok.tools.cloudclient import CloudClient
        from kapok.tools.simulation import history

        if self.record.get("history") or not self.history_days:
            return 0
        with CloudClient(self.base, self.record["gateway"]["token"]) as gw:
            readings = history.backfill(
                state,
                self.plan().nodes(),
                days=self.history_days,
                now=time.time(),
                timezone=TIMEZONE,
                ingest=gw.ingest,
            )
        self.record["history"] = True
        self.save()
        return readings

    def start_virtual(self, admin, state, log) -> None:
        """One more gas meter, running the real firmware on a virtual board,
        when Node and the MicroPython WebAssembly port are installed; in the
        background (its first build compiles the firmware), never fatal."""
        from kapok.tools.simulation.community import provision
        from kapok.tools.simulation.virtual import VirtualNodes
        from kapok.tools.virtualboard import VirtualBoardError, find_node_modules

        if shutil.which("node") is None:
            log("(no Node installed: the virtual board with the real firmware is left out)")
            return
        try:
            find_node_modules()
        except VirtualBoardError:
            log("(the MicroPython WebAssembly port is not installed: no virtual board)")
            return
        spec = self.virtual_spec()
        if not self.record.get("virtual"):
            provision(
                admin,
                state,
                [spec],
                gateway=self.record["gateway"]["id"],
                runtime="micropython",
                interval=int(self.interval),
            )
            self.record["virtual"] = True
            self.save()
        self.virtual = VirtualNodes(
            [spec],
            state,
            ("127.0.0.1", self.coap_port),
            interval=int(min(self.interval, 30)),
            log=log,
        )

        def boot():
            try:
                self.virtual.start()
            except Exception as e:  # the demo goes on without it
                log(f"(the virtual board did not start: {e})")

        self._virtual_thread = threading.Thread(target=boot, daemon=True, name="virtual-board")
        self._virtual_thread.start()

    def stop(self) -> None:
        if self.virtual is not None:
            if self._virtual_thread is not None:
                self._virtual_thread.join(timeout=60)
            self.virtual.stop()
        for child in reversed(self.children):  # the agent, then the cloud
            child.stop()

    def panel(self, password: str) -> Panel:
        from kapok.tools.simulation import incidents

        plan = self.plan()
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("Dashboard", f"{self.base}/")
        table.add_row("Login", f"admin  /  {password}")
        table.add_row("API", f"{self.base}/docs")
        table.add_row(
            "Community",
            f"{COMMUNITY}: {plan.units} units, {plan.gas} gas, {plan.water} water and "
            f"{plan.electricity} electricity meters, {plan.hubs} hubs, {plan.quality} water-"
            "quality station",
        )
        table.add_row("Gateway", f"coap://127.0.0.1:{self.coap_port} (kapok agent run)")
        coming = [incidents.parse(text).describe() for text in self.incidents()]
        table.add_row("Coming up", "; ".join(coming))
        table.add_row("Folder", f"{self.folder} (logs, database, keys)")
        return Panel(table, title="Kapok demo 木棉", subtitle="Ctrl-C stops everything")

    def watch_children(self) -> Child | None:
        for child in self.children:
            if not child.alive():
                return child
        return None


def demo(
    port: int = typer.Option(8000, "--port", help="The dashboard's port on 127.0.0.1."),
    data: Path = typer.Option(
        None,
        "--data",
        help="The demo's folder (default ~/.local/share/kapok/demo): kept between runs.",
        show_default=False,
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Start over: delete the demo's folder."),
    units: int = typer.Option(50, "--units", min=3, max=2000, help="Households."),
    history_days: int = typer.Option(
        None,
        "--history-days",
        min=0,
        max=400,
        help="Days of past readings (default: from the first day of last month, so its bill "
        "is whole).",
        show_default=False,
    ),
    interval: float = typer.Option(
        60.0, "--interval", min=5.0, help="Seconds between a node's uplinks."
    ),
    virtual: bool = typer.Option(
        True,
        "--virtual/--no-virtual",
        help="Also run one gas meter as the real firmware on a virtual board (needs Node).",
    ),
    duration: float = typer.Option(
        None, "--duration", min=0.0, help="Stop this many seconds after it is up (for scripts)."
    ),
) -> None:
    """Cloud, gateway agent and a simulated community on this machine.

    Prints the dashboard's address and the admin login (the password is
    made up on the first run, or KAPOK_ADMIN_PASSWORD), then lets the
    community live: readings every minute, a gas leak at unit 3 after ten
    seconds (the meter shuts its valve, the gateway sounds the siren, the
    alarm reaches the dashboard), a meter going silent, a water-quality
    excursion. Ctrl-C stops everything.
    """
    folder = (data or default_folder()).expanduser()
    if fresh and folder.exists():
        if not (folder / STATE_FILE).is_file():
            fail(f"{folder} is not a demo's folder: not deleting it", EXIT_USAGE)
        shutil.rmtree(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        fail(f"cannot create {folder}: {e.strerror}", EXIT_USAGE)
    if history_days is None:
        from kapok.tools.simulation.history import since_last_month

        history_days = since_last_month(time.time(), TIMEZONE)
    run = Demo(folder, port=port, units=units, history_days=history_days, interval=interval)
    previous = signal.signal(signal.SIGTERM, _raise_stopped)
    code = 0
    try:
        _run(run, virtual, duration)
    except (KeyboardInterrupt, Stopped):
        run.console.print("stopping ...", markup=False)
    except KapokError as e:
        run.console.print(f"error: {e}", style="red", markup=False, highlight=False)
        code = e.code
    except Exception as e:  # a bug: one line here, the whole story in a file
        import traceback

        log = folder / "demo-error.log"
        with contextlib.suppress(OSError):
            log.write_text(traceback.format_exc(), encoding="utf-8")
        run.console.print(
            f"error: the demo failed ({type(e).__name__}: {e}); details in {log}",
            style="red",
            markup=False,
            highlight=False,
        )
        code = EXIT_FAILED
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        run.stop()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if code:
        raise typer.Exit(code)
    run.console.print("demo stopped; everything is kept in " + str(folder), markup=False)


def _raise_stopped(*_):
    raise Stopped()


def _run(run: Demo, virtual: bool, duration: float | None) -> None:
    from kapok.tools.cloudclient import CloudClient
    from kapok.tools.sim import Reporter
    from kapok.tools.simulation import incidents
    from kapok.tools.simulation.community import SimState, wait_for_gateway_key
    from kapok.tools.simulation.runner import Simulation

    console = run.console
    run.load()
    units = run.record.setdefault("units", run.units)
    if units != run.units:
        raise KapokError(
            f"this demo has {units} units: drop --units, or start over with --fresh", EXIT_USAGE
        )
    state = SimState.load(run.folder / "sim")
    with console.status("starting the cloud ..."):
        run.start_cloud()
    admin = CloudClient.connect(run.base, user="admin", password=run.password())
    try:
        with console.status("setting up the community ..."):
            run.setup(admin, state)
        with console.status("starting the gateway agent ..."):
            run.start_agent()
            if not wait_for_gateway_key(admin, state, run.record["gateway"]["id"], 30):
                agent = run.children[-1]
                raise KapokError(f"the gateway agent did not start: {agent.last_words()}")
        with console.status(f"signing and sending {run.history_days} days of readings ..."):
            readings = run.backfill(state)
        if readings:
            console.print(f"history: {readings} signed readings ingested", markup=False)
        log = Reporter(run.out)
        if virtual:
            run.start_virtual(admin, state, log)
        nodes = state.nodes(run.plan().nodes())
        simulation = Simulation(
            nodes,
            ("127.0.0.1", run.coap_port),
            interval=run.interval,
            incidents=[incidents.parse(text) for text in run.incidents()],
            first_within=min(run.interval, 8.0),
            log=log,
        )
        run.out.print(run.panel(run.password()))
        try:
            asyncio.run(_live(run, simulation, duration, log))
        finally:
            state.remember(nodes)
    finally:
        admin.close()


async def _live(run: Demo, simulation, duration: float | None, log) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, simulation.stop)

    async def watch() -> None:
        while True:
            await asyncio.sleep(1)
            dead = run.watch_children()
            if dead is not None:
                run.died = dead
                simulation.stop()
                return

    async def report() -> None:
        while True:
            await asyncio.sleep(30)
            log(simulation.stats.line())

    tasks = [asyncio.create_task(watch()), asyncio.create_task(report())]
    run.died = None
    try:
        await simulation.run(duration)
    finally:
        for task in tasks:
            task.cancel()
    if run.died is not None:
        raise KapokError(
            f"the {run.died.name} stopped: {run.died.last_words()} (log: {run.died.log_path})"
        )
