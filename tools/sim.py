"""`kapok sim`: a simulated community talking to a real gateway.

Two runtimes: `cpython` (default) runs thousands of nodes in this process,
each with its own key, seq counter, interval and meter model, built on the
same protocol code as the firmware and speaking real CoAP over UDP to the
gateway; `micropython` runs a few nodes as the real firmware on virtual
boards. Incidents (a gas leak at unit 3 after a minute, a water-quality
excursion, a meter going silent) come from --incident.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from kapok.tools.errors import EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE, KapokError, fail

RUNTIMES = ("cpython", "micropython")
MAX_VIRTUAL = 16  # each virtual board is a Node process of its own


def progress_bar(console: Console, what: str) -> Progress:
    """A progress bar on stderr, for a terminal only."""
    return Progress(
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


class Reporter:
    """Timestamped lines on stdout (what happened), from any thread."""

    def __init__(self, console: Console):
        self.console = console
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self.lock:
            self.console.print(
                f"[+{time.monotonic() - self.started:5.0f}s] {text}", markup=False, highlight=False
            )


def summary_table(stats, seconds: float) -> Table:
    table = Table(title="simulation", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    refused = sum(stats.refused.values())
    rows = [
        ("uplinks sent", stats.sent),
        ("acknowledged", stats.acked),
        ("refused", refused),
        ("told to wait (5.03)", stats.unavailable),
        ("unanswered", stats.unanswered),
        ("acknowledged per second", f"{stats.acked / seconds:.1f}" if seconds else "-"),
        ("commands run", stats.commands),
    ]
    for q in (0.5, 0.95):
        v = stats.latency(q)
        rows.append((f"ack latency p{int(q * 100)}", "-" if v is None else f"{v:.1f} ms"))
    for k, v in rows:
        table.add_row(k, str(v))
    return table


def sim(
    gateway: str = typer.Option(
        None,
        "--gateway",
        "-g",
        help="The gateway's CoAP address, HOST:PORT (what `kapok agent run --listen` says).",
        show_default=False,
    ),
    gas: int = typer.Option(0, "--gas", min=0, help="Gas meters (one per unit)."),
    water: int = typer.Option(0, "--water", min=0, help="Water meters (one per unit)."),
    electricity: int = typer.Option(0, "--electricity", min=0, help="Electricity meters."),
    quality: int = typer.Option(0, "--quality", min=0, help="Water-quality stations."),
    hubs: int = typer.Option(0, "--hubs", min=0, help="Home hubs (one per unit)."),
    runtime: str = typer.Option(
        "cpython",
        "--runtime",
        help="cpython: nodes in this process, thousands for load; micropython: the real "
        "firmware on virtual boards, a few.",
    ),
    interval: float = typer.Option(
        60.0, "--interval", min=1.0, help="Seconds between a node's routine uplinks."
    ),
    duration: float = typer.Option(
        None, "--duration", min=0.0, help="Stop after this many seconds (default: Ctrl-C)."
    ),
    incident: list[str] = typer.Option(
        [],
        "--incident",
        "-i",
        help="KIND@TARGET+TIME[~LASTS], e.g. gas-leak@unit-3+60s, quality@wq-1+2m, "
        "silent@wm-0005+30s (repeat it), or a script file of such lines. Kinds: gas-leak, "
        "water-leak, smoke, quality, silent.",
        show_default=False,
    ),
    state: Path = typer.Option(
        Path("kapok-sim"),
        "--state",
        help="Folder keeping the nodes' keys and counters (and the virtual boards' flash).",
    ),
    prefix: str = typer.Option("", "--prefix", help="Put this before every device id."),
    provision: bool = typer.Option(
        False,
        "--provision",
        help="First register the nodes (and their units) with the cloud: needs --cloud, "
        "--gateway-id and an admin login.",
    ),
    cloud: str = typer.Option(
        None, "--cloud", help="The cloud's URL, for --provision and --history-days."
    ),
    gateway_id: str = typer.Option(
        None, "--gateway-id", help="The cloud's id of the gateway the nodes belong to."
    ),
    token: str = typer.Option(
        None, "--token", help="A login token (else $KAPOK_TOKEN, or --user/--password)."
    ),
    user: str = typer.Option(None, "--user", help="Log in as this user."),
    password: str = typer.Option(None, "--password", help="... with this password."),
    history_days: int = typer.Option(
        0,
        "--history-days",
        min=0,
        help="Before going live, send this many days of past readings (signed by each node) "
        "through the cloud's ingest, as the gateway would: needs --gateway-token.",
    ),
    gateway_token: str = typer.Option(
        None,
        "--gateway-token",
        envvar="KAPOK_GATEWAY_TOKEN",
        help="The gateway's token (for --history-days).",
    ),
    report: float = typer.Option(10.0, "--report", min=1.0, help="Seconds between progress lines."),
) -> None:
    """Run a simulated community against a gateway (`kapok agent run`).

    Nodes are gm-0001 (gas), wm-0001 (water), em-0001 (electricity) and
    hub-0001 for unit 1, 2, ... and wq-1, wq-2 for water-quality stations.
    Each signs its uplinks with its own key; keys and seq counters live in
    --state, so the next run continues where this one stopped.

    A first run against a fresh cloud registers the nodes (--provision):

      kapok sim --gateway 127.0.0.1:5683 --gas 50 --water 50 --hubs 10 --quality 1
      --provision --cloud http://127.0.0.1:8000 --gateway-id gw-1 --user admin
      --password ... --incident gas-leak@unit-3+60s --incident silent@wm-0005+2m

    Ctrl-C stops it and prints what happened.
    """
    console = Console(stderr=True)
    out = Console(highlight=False)
    try:
        _sim(locals(), console, out)
    except KapokError as e:
        fail(str(e), e.code)


def _sim(o: dict, console: Console, out: Console) -> None:
    from kapok.tools.simulation import incidents as incident_grammar
    from kapok.tools.simulation.community import Plan, SimState, SimStateError
    from kapok.tools.simulation.radio import parse_address
    from kapok.tools.simulation.runner import IncidentTargetError

    if o["gateway"] is None:
        raise KapokError("give the gateway's CoAP address: --gateway HOST:PORT", EXIT_USAGE)
    if o["runtime"] not in RUNTIMES:
        raise KapokError(f"--runtime is {' or '.join(RUNTIMES)}", EXIT_USAGE)
    try:
        gateway = parse_address(o["gateway"])
        plan = Plan(o["gas"], o["water"], o["electricity"], o["quality"], o["hubs"], o["prefix"])
        script = incident_grammar.gather(o["incident"])
    except ValueError as e:
        raise KapokError(str(e), EXIT_USAGE) from None
    specs = plan.nodes()
    if not specs:
        raise KapokError(
            "no nodes: give --gas N, --water N, --electricity N, --quality N or --hubs N",
            EXIT_USAGE,
        )
    micropython = o["runtime"] == "micropython"
    if micropython and len(specs) > MAX_VIRTUAL:
        raise KapokError(
            f"{len(specs)} virtual boards is too many (at most {MAX_VIRTUAL}, each a process): "
            "use --runtime cpython for load",
            EXIT_USAGE,
        )
    if o["history_days"] and micropython:
        raise KapokError(
            "--history-days is for cpython nodes: a virtual board counts its seqs itself",
            EXIT_USAGE,
        )
    try:
        state = SimState.load(o["state"])
        _check_targets(script, specs)
    except (SimStateError, IncidentTargetError) as e:
        raise KapokError(str(e), EXIT_USAGE) from None

    runtime = o["runtime"]
    cloud = None
    try:
        if o["provision"] or (o["cloud"] and (o["token"] or o["user"])):
            cloud = _cloud(o)
        if o["provision"]:
            _provision(cloud, state, specs, o, console, runtime)
        elif cloud is not None and o["gateway_id"]:
            _refresh_gateway_key(cloud, state, o["gateway_id"])
        missing = [s.id for s in specs if s.id not in state.data["nodes"]]
        if missing:
            raise KapokError(
                f"no keys for {missing[0]}"
                + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                + f" in {state.path}: run once with --provision (it registers them)",
                EXIT_USAGE,
            )
        if o["history_days"]:
            _history(state, specs, o, console, out)
        if micropython:
            _run_virtual(state, specs, script, gateway, o, console, out)
        else:
            _run_cpython(state, specs, script, gateway, o, cloud, out)
    except SimStateError as e:
        raise KapokError(str(e)) from None
    finally:
        if cloud is not None:
            cloud.close()


def _check_targets(script, specs) -> None:
    from kapok.tools.simulation.node import SimNode
    from kapok.tools.simulation.runner import resolve_target

    models = [SimNode(s, b"\0" * 32, {}) for s in specs]
    for incident in script:
        resolve_target(incident, models)


def _cloud(o: dict):
    from kapok.tools.cloudclient import CloudClient

    if not o["cloud"]:
        raise KapokError("--provision needs the cloud: --cloud URL", EXIT_USAGE)
    return CloudClient.connect(o["cloud"], token=o["token"], user=o["user"], password=o["password"])


def _provision(cloud, state, specs, o, console, runtime) -> None:
    from kapok.tools.simulation import history
    from kapok.tools.simulation.community import provision, wait_for_gateway_key

    if not o["gateway_id"]:
        raise KapokError(
            "--provision needs the gateway's id in the cloud: --gateway-id", EXIT_USAGE
        )
    installed = None
    if o["history_days"]:
        installed = history.install_time(
            o["history_days"], now=time.time(), timezone=_timezone(cloud, o["gateway_id"])
        )
    with progress_bar(console, "registering nodes") as bar:
        task = bar.add_task("", total=len(specs))
        provision(
            cloud,
            state,
            specs,
            gateway=o["gateway_id"],
            runtime=runtime,
            interval=int(o["interval"]),
            installed_at=installed,
            progress=lambda: bar.advance(task),
        )
    if not wait_for_gateway_key(cloud, state, o["gateway_id"], 10):
        console.print(
            f"note: gateway {o['gateway_id']} has not registered its key yet (is its agent "
            "running?): the nodes refuse its fail-safe commands until it has",
            markup=False,
        )


def _refresh_gateway_key(cloud, state, gateway_id) -> None:
    key = cloud.gateway(gateway_id).get("public_key")
    if key:
        state.set_authority(gateway_id, key, "failsafe")
        state.save()


def _timezone(cloud, gateway_id: str) -> str:
    community = cloud.gateway(gateway_id)["community_id"]
    return next(
        (c["timezone"] for c in cloud.communities() if c["id"] == community), "Asia/Shanghai"
    )


def _history(state, specs, o, console, out) -> None:
    from kapok.tools.cloudclient import CloudClient
    from kapok.tools.simulation import history

    if not o["cloud"] or not o["gateway_token"]:
        raise KapokError(
            "--history-days sends through the cloud's ingest: give --cloud and --gateway-token",
            EXIT_USAGE,
        )
    with CloudClient(o["cloud"], o["gateway_token"]) as gw:
        timezone = "Asia/Shanghai"
        if o["gateway_id"] and (o["token"] or o["user"]):
            with _cloud(o) as admin:
                timezone = _timezone(admin, o["gateway_id"])
        total = sum(1 for s in specs if s.kind in history.KINDS_WITH_HISTORY) * o["history_days"]
        with progress_bar(console, "sending history") as bar:
            task = bar.add_task("", total=total)
            readings = history.backfill(
                state,
                specs,
                days=o["history_days"],
                now=time.time(),
                timezone=timezone,
                ingest=gw.ingest,
                progress=lambda k: bar.advance(task, k),
            )
    out.print(f"history: {readings} readings over {o['history_days']} days, signed and ingested")


def _run_cpython(state, specs, script, gateway, o, cloud, out: Console) -> None:
    from kapok.tools.simulation.runner import Simulation

    log = Reporter(out)
    nodes = state.nodes(specs)
    authorities = nodes[0].authorities  # one map, shared by every node

    async def refresh() -> bool:
        gw = o["gateway_id"]
        key = (await asyncio.to_thread(cloud.gateway, gw)).get("public_key")
        if key:
            authorities[gw] = (bytes.fromhex(key), "failsafe")
            state.set_authority(gw, key, "failsafe")
        return bool(key)

    needs_refresh = cloud is not None and o["gateway_id"] and o["gateway_id"] not in authorities
    simulation = Simulation(
        nodes,
        gateway,
        interval=o["interval"],
        incidents=script,
        first_within=min(o["interval"], 10.0),
        log=log,
        refresh_authorities=refresh if needs_refresh else None,
    )
    log(
        f"{len(nodes)} simulated nodes (cpython) -> gateway {gateway[0]}:{gateway[1]}, "
        f"an uplink every {o['interval']:g} s each; Ctrl-C stops"
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, simulation.stop)

        async def progress() -> None:
            while True:
                await asyncio.sleep(o["report"])
                log(simulation.stats.line())

        ticker = asyncio.create_task(progress())
        try:
            await simulation.run(o["duration"])
        finally:
            ticker.cancel()

    started = time.monotonic()
    try:
        asyncio.run(main())
    finally:
        state.remember(nodes)
    stats = simulation.stats
    out.print(summary_table(stats, time.monotonic() - started))
    if simulation.crashed:
        raise KapokError(f"{len(simulation.crashed)} simulated nodes crashed (see above)")
    if stats.sent and not stats.acked:
        if stats.refused:
            code = next(iter(stats.refused))
            raise KapokError(
                f"the gateway refused every uplink ({code}): are the nodes registered with its "
                "cloud? (run once with --provision)"
            )
        raise KapokError(
            f"the gateway at {gateway[0]}:{gateway[1]} never answered: is `kapok agent run` "
            "listening there?",
            EXIT_UNAVAILABLE,
        )


def _run_virtual(state, specs, script, gateway, o, console, out: Console) -> None:
    from kapok.tools.simulation.node import SimNode
    from kapok.tools.simulation.runner import resolve_target
    from kapok.tools.simulation.virtual import VirtualNodes
    from kapok.tools.virtualboard import VirtualBoardError

    log = Reporter(out)
    nodes = VirtualNodes(specs, state, gateway, interval=int(o["interval"]), log=log)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT,)}
    previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with progress_bar(console, "booting virtual boards") as bar:
            task = bar.add_task("", total=len(specs))
            nodes.start(on_booted=lambda _: bar.advance(task))
        models = [SimNode(s, b"\0" * 32, {}) for s in specs]
        pairs = [(i, resolve_target(i, models).id) for i in script]
        started = time.time()
        worker = threading.Thread(target=nodes.run_script, args=(pairs, started, stop), daemon=True)
        worker.start()
        log(f"{len(specs)} nodes on virtual boards (real firmware) -> {gateway[0]}:{gateway[1]}")
        stop.wait(o["duration"])
        stop.set()
        worker.join(timeout=5)
    except VirtualBoardError as e:
        raise KapokError(f"virtual board: {e}", EXIT_FAILED) from None
    finally:
        nodes.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log(f"stopped; the boards' flash and logs are in {nodes.folder}")
