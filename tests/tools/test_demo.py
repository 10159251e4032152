"""`kapok demo` as a newcomer runs it: one command, a URL and a login to
use, a community that lives (readings, a gas leak alarm), and Ctrl-C (or
the end of --duration) stops everything: exit 0, no traceback, no process
left behind."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kapok.tools.cloudclient import CloudClient
from tests.e2e.helpers import free_port, until


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line or environment names `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if state != "Z" and (text.encode() in cmdline or text.encode() in environ):
            found.append(int(proc.name))
    return found


class Demo:
    def __init__(self, folder: Path, *args: str):
        self.folder = folder
        self.port = free_port()
        self.out = folder.parent / f"{folder.name}.out"
        self.err = folder.parent / f"{folder.name}.err"
        cmd = [sys.executable, "-m", "kapok.tools", "demo", "--data", str(folder)]
        cmd += ["--port", str(self.port), "--units", "6", "--interval", "5", *args]
        env = {**os.environ, "COLUMNS": "120"}
        env.pop("KAPOK_ADMIN_PASSWORD", None)
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8", errors="replace")

    def login(self) -> tuple[str, str]:
        """The URL and password the demo printed."""

        def printed():
            assert self.proc.poll() is None, self.stderr()
            text = self.stdout()
            url = re.search(r"Dashboard\s+(http://\S+)", text)
            password = re.search(r"Login\s+admin\s+/\s+(\S+)", text)
            return url and password and (url.group(1), password.group(1))

        return until(printed, "the demo to print its URL and login", timeout=120)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "kapok-demo"
    yield path
    # a failed test may have left the demo's children (in sessions of their own) running
    for pid in processes_mentioning(str(path)):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def test_the_demo_lives_and_stops_cleanly_on_ctrl_c(folder):
    demo = Demo(folder)
    try:
        url, password = demo.login()
        assert url == f"http://127.0.0.1:{demo.port}/"
        with CloudClient.connect(url, user="admin", password=password) as cloud:
            devices = {d["id"]: d for d in cloud.devices()}
            assert {"gm-0001", "wm-0006", "em-0002", "hub-0001", "wq-1"} <= set(devices)
            assert devices["gm-0003"]["unit"] is not None
            # weeks of history, then live readings
            history = cloud.readings("gm-0001", "vol")
            assert history and history[0]["t"] < time.time() - 20 * 86400
            live = until(
                lambda: [r for r in cloud.readings("wm-0002", "vol") if r["t"] > time.time() - 60],
                "live readings",
            )
            assert live[-1]["time_source"] in ("message", "gateway")
            alarm = until(
                lambda: [a for a in cloud.alarms() if a["code"] == "gas.leak"],
                "the scripted gas leak's alarm",
            )[0]
            assert alarm["device"] == "gm-0003" and alarm["state"] == "open"
        children = processes_mentioning(str(folder))
        assert len(children) >= 2  # the cloud and the agent (and a virtual board)
        demo.proc.send_signal(signal.SIGINT)
        assert demo.wait(60) == 0, demo.stderr()
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
    assert "Traceback" not in demo.stdout() + demo.stderr()
    assert "demo stopped" in demo.stderr()
    until(lambda: not processes_mentioning(str(folder)), "every child to be gone", timeout=10)


def test_the_demo_carries_on_where_it_stopped_and_ends_after_its_duration(folder):
    assert (folder / "demo.json").stat().st_mode & 0o777 == 0o600  # the password is in it
    started = time.monotonic()
    demo = Demo(folder, "--duration", "6", "--no-virtual")
    try:
        demo.login()
        assert demo.wait(90) == 0, demo.stderr()
    finally:
        if demo.proc.poll() is None:
            demo.proc.kill()
    assert time.monotonic() - started < 60  # no second set-up, no second history
    assert "history:" not in demo.stderr() + demo.stdout()
    assert "Traceback" not in demo.stdout() + demo.stderr()
    assert not processes_mentioning(str(folder))


def test_a_taken_port_is_one_line(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "kapok.tools", "demo", "--data", str(tmp_path / "d"),
             "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: port")
    assert "Traceback" not in proc.stderr


def test_the_kapok_command_carries_the_cloud_and_the_agent():
    from typer.testing import CliRunner

    from kapok.tools.cli import app

    runner = CliRunner()
    serve = runner.invoke(app, ["cloud", "serve", "--help"])
    assert serve.exit_code == 0
    for flag in ("--host", "--port", "--db"):
        assert flag in serve.stdout
    run = runner.invoke(app, ["agent", "run", "--help"])
    assert run.exit_code == 0
    for flag in ("--cloud", "--token", "--listen", "--data"):
        assert flag in run.stdout
    assert runner.invoke(app, ["cloud", "add-gateway", "--help"]).exit_code == 0
