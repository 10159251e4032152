"""A throwaway Mosquitto broker (Debian's package) for the MQTT tests: a temp
config on a free loopback port, persistence in a temp dir (so a restart
keeps retained messages and persistent sessions, as a real one would), no
system service. And a subscriber that records what it receives."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho


class MosquittoMissing(RuntimeError):
    pass


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if not found:
        raise MosquittoMissing(
            "mosquitto not found: install the Debian package `mosquitto` "
            "(apt-get install -y mosquitto; .ci/run does)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self):
        self.binary = mosquitto_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="kapok-mqtt-"))
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        user = pwd.getpwuid(os.getuid()).pw_name  # as root it would drop to `mosquitto`
        (self.dir / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            f"user {user}\n"
            "log_dest stderr\n"
            "log_type error\n"
            "log_type warning\n",
            encoding="utf-8",
        )

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited:\n" + (self.dir / "log").read_text())
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file and exits."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Subscriber:
    """A paho client on its own thread: a persistent session (QoS 1), so what
    is published while it reconnects after a broker restart still reaches it;
    it reconnects by itself."""

    def __init__(
        self, port: int, topics=("#",), client_id: str = "kapok-test", *, clean: bool = False
    ):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.redelivered: list[tuple[str, bytes]] = []  # QoS 1 DUP: the broker sent it again
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
        )
        self.client.reconnect_delay_set(0.05, 0.2)
        self.topics = topics

        def on_connect(client, _userdata, flags, reason, _props):
            if reason.is_failure:
                return
            if not flags.session_present:  # a kept session keeps its subscriptions
                for topic in self.topics:
                    client.subscribe(topic, qos=1)
            self.connected.set()

        def on_disconnect(*_args):
            self.connected.clear()

        def on_message(_client, _userdata, msg):
            with self.lock:
                if msg.dup:
                    self.redelivered.append((msg.topic, msg.payload))
                self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("subscriber did not connect")

    def received(self, suffix: str = "") -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return [m for m in self.messages if m[0].endswith(suffix)]

    def json(self, suffix: str) -> list[tuple[str, dict]]:
        return [(t, json.loads(p)) for t, p, _ in self.received(suffix) if p]

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
