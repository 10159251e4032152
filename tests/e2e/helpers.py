"""The real parts of an end-to-end run, as a user starts them: `kapok cloud
serve` on PostgreSQL and `kapok agent run` as processes, virtual boards
flashed with `kapok fw flash` and provisioned the way `kapok device
provision` does it, the `kapok` command itself for everything a user types.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from kapok.tools.board import open_board
from kapok.tools.cli import app
from kapok.tools.cloudclient import CloudClient
from kapok.tools.device import node_config, provision_board
from kapok.tools.keys import read_key_file
from kapok.tools.virtualboard import VirtualBoard

ADMIN_PASSWORD = "e2e-admin-password"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
runner = CliRunner()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def until(predicate, what: str, timeout: float = 60.0, step: float = 0.2):
    """Poll `predicate` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(step)


def kapok(*args: str, ok: bool = True):
    """Run the `kapok` command in-process, as a user types it."""
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, f"kapok {' '.join(map(str, args))}: {result.output}"
    return result


class Process:
    """A `kapok` process with its output in a log file."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None):
        self.args = args
        self.log = log
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        out.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


class Stack:
    """A cloud on PostgreSQL, an admin, a community with a unit, a gateway
    and its agent."""

    def __init__(self, folder: Path, db_url: str, env: dict | None = None):
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.coap_port = free_port(socket.SOCK_DGRAM)
        env = {
            **os.environ,
            "KAPOK_DATA_DIR": str(folder / "cloud"),
            "KAPOK_DB": db_url,
            "KAPOK_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "KAPOK_SCRYPT_N": "1024",
            "KAPOK_CHECK_SECONDS": "5",
            **(env or {}),
        }
        self.cloud = Process(
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
            folder / "cloud.log",
            env,
        )
        self.agent: Process | None = None
        self.admin: CloudClient | None = None

    def start_cloud(self) -> None:
        self.cloud.start()

        def healthy():
            assert self.cloud.running, f"the cloud stopped:\n{self.cloud.text()[-2000:]}"
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200
            return False

        until(healthy, "the cloud to answer", timeout=60)

    def set_up(self, *, agent: bool = True) -> None:
        self.start_cloud()
        self.admin = CloudClient.connect(self.url, user="admin", password=ADMIN_PASSWORD)
        self.community = self.admin.create_community("木棉花园 E2E")
        building = self.admin.create_building(self.community, "1栋")
        self.units = [self.admin.create_unit(building["id"], f"10{i}")["id"] for i in (1, 2, 3)]
        gw = self.admin.create_gateway(self.community, "东门机房")
        self.gateway, self.gateway_token = gw["id"], gw["token"]
        if agent:
            self.start_agent()

    def start_agent(self) -> None:
        self.agent = Process(
            [
                sys.executable,
                "-m",
                "kapok.edge_agent",
                "run",
                "--cloud",
                self.url,
                "--token",
                self.gateway_token,
                "--listen",
                f"127.0.0.1:{self.coap_port}",
                "--data",
                str(self.folder / "agent"),
                "--metrics",
                "off",
                "--backoff-cap",
                "2",
                "--registry-interval",
                "5",
            ],
            self.folder / "agent.log",
        )
        self.agent.start()
        self.gateway_key = until(
            lambda: self.admin.gateway(self.gateway).get("public_key"),
            "the agent to register its key",
            timeout=60,
        )

    def agent_status(self) -> dict:
        """What `kapok agent status --json` says."""
        return json.loads(
            kapok("agent", "status", "--data", self.folder / "agent", "--json").stdout
        )

    def agent_log(self) -> list[dict]:
        out = []
        for line in self.agent.text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def tear_down(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.agent is not None:
            self.agent.stop()
        self.cloud.stop()


class Meter:
    """A gas meter running the real firmware on a virtual board: its key
    from `kapok device keygen`, registered with `kapok device register`,
    flashed with `kapok fw flash --virtual`, provisioned with the runtime's
    own config code (as `kapok device provision` does, plus app options a
    test needs, such as a methane head that warms up in a second)."""

    def __init__(self, stack: Stack, folder: Path, device: str, *, unit: int, bundle: Path):
        self.stack = stack
        self.device = device
        self.flash = folder / device
        key = folder / f"{device}.key"
        kapok("device", "keygen", device, "--out", key)
        self.identity = read_key_file(key)
        kapok(
            "device",
            "register",
            device,
            "--kind",
            "gas-meter",
            "--key-file",
            key,
            "--gateway",
            stack.gateway,
            "--unit",
            unit,
            "--board",
            "virtual",
            "--interval",
            5,
            "--cloud",
            stack.url,
            "--token",
            stack.admin.token,
        )
        kapok("fw", "flash", "--virtual", self.flash, "--bundle", bundle)
        keys = stack.admin.keys()
        cfg = node_config(
            self.identity,
            gateway=f"127.0.0.1:{stack.coap_port}",
            kind="gas-meter",
            board="virtual",
            authorities=[f"cloud={keys['cloud']}", f"{stack.gateway}={stack.gateway_key}"],
            firmware_key=keys["firmware"],
            sample_s=5,
            send_s=5,
        )
        cfg["options"] = {"methane": {"warmup_s": 1}}
        with open_board(virtual=self.flash) as board:
            provision_board(board, cfg)
        setup = {
            "cjt188": {"type": 0x30},
            "world": {"meter.vol": 120.5, "meter.flow": 0.5, "valve.travel_ms": 1000},
        }
        self.board = VirtualBoard(self.flash, setup=setup)

    def start(self) -> None:
        self.board.start()
        assert self.board.wait_console("kapok: node", timeout=120), self.board.console[-5:]

    def readings(self, name: str) -> list[dict]:
        return self.stack.admin.readings(self.device, name)

    def stop(self) -> None:
        self.board.stop()
