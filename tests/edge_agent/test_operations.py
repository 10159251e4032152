"""What an operator sees and does: metrics, status, logs, SIGTERM, a restart
with the cloud away, a wrong token."""

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys

import httpx

from kapok.edge_agent.config import Address
from kapok.protocols import coap_numbers as n
from kapok.protocols import ed25519

from .helpers import Node, RawClient, agent_process, free_udp_port, wait_coap_up
from .test_durability import readings, send_all, wait_until


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "kapok.edge_agent", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_metrics_endpoint(cloud, start_agent):
    node = Node("gm-0001").register(cloud)
    agent = start_agent(metrics=Address("127.0.0.1", 0))
    agent.wait_registry(cloud)
    client = RawClient(agent.port)
    assert client.uplink(node.uplink()).code == n.CHANGED
    assert client.uplink(node.uplink()).code == n.CHANGED
    assert client.uplink(b"\x00").code == n.BAD_REQUEST
    cloud.down()
    assert client.uplink(node.uplink()).code == n.CHANGED
    wait_until(lambda: agent.agent.cloud.reachable is False, what="the outage to be noticed")
    text = httpx.get(f"http://127.0.0.1:{agent.agent.metrics_port}/metrics").text
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['kapok_agent_uplinks_total{result="stored"}'] == 3
    assert samples['kapok_agent_uplinks_total{result="bad_request"}'] == 1
    assert samples["kapok_agent_queue_depth"] >= 1
    assert samples["kapok_agent_queue_oldest_age_seconds"] >= 0
    assert samples["kapok_agent_cloud_reachable"] == 0
    assert samples["kapok_agent_cloud_last_contact_timestamp_seconds"] > 0
    assert samples["kapok_agent_registry_devices"] == 1
    assert samples["kapok_agent_registry_age_seconds"] >= 0
    assert 'kapok_agent_commands{state="pending"}' in samples
    assert "kapok_agent_forward_latency_seconds_count" in samples
    assert samples["kapok_agent_commit_group_size_count"] >= 3


def test_status_command(cloud, start_agent, tmp_path):
    node = Node("gm-0001").register(cloud)
    agent = start_agent()
    agent.wait_registry(cloud)
    agent.wait_for(lambda: agent.agent.cloud.last_contact, what="a cloud contact")
    cloud.down()
    client = RawClient(agent.port)
    for _ in range(3):
        assert client.uplink(node.uplink()).code == n.CHANGED
    agent.stop()  # the file is read while the agent runs, too; stopping saves last contact
    proc = run_cli("status", "--data", str(tmp_path / "agent"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "queue depth" in out and "3 readings" in out
    assert "oldest unsent" in out
    assert "last cloud contact" in out and "never" not in out.split("last cloud contact")[1][:40]
    assert "Rejected by the cloud" in out
    status = json.loads(run_cli("status", "--data", str(tmp_path / "agent"), "--json").stdout)
    assert status["queue"]["depth"] == 3
    assert status["registry"]["devices"] == 1
    seed = (tmp_path / "agent" / "gateway.key").read_bytes()
    assert status["gateway_public_key"] == ed25519.public_key(seed).hex()


def test_status_of_a_directory_without_an_agent(tmp_path):
    proc = run_cli("status", "--data", str(tmp_path))
    assert proc.returncode == 1
    assert "no agent queue" in proc.stderr


def test_sigterm_finishes_what_it_holds_and_exits_0(cloud, tmp_path):
    nodes = [Node(f"gm-{i:03d}").register(cloud) for i in range(8)]
    port = free_udp_port()
    data = tmp_path / "agent"
    proc = agent_process(cloud.url, data, port)
    wait_coap_up(port)
    wait_until(lambda: (data / "registry.json").exists(), what="the registry")

    def stop_midway(count):
        if count == 40:
            proc.send_signal(signal.SIGTERM)
            return True
        return False

    acked = asyncio.run(send_all(port, readings(cloud, nodes, 20), on_ack=stop_midway))
    assert proc.wait(20) == 0
    with sqlite3.connect(data / "queue.sqlite3") as conn:
        stored = set(conn.execute("SELECT device, seq FROM uplinks"))
    assert acked <= stored
    # structured logs: one JSON object per line
    lines = proc.stderr.read().decode().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    messages_ = [r["message"] for r in records]
    assert "agent started" in messages_
    assert messages_[-1] == "agent stopped"


def test_a_restart_with_the_cloud_away_uses_the_saved_registry(cloud, start_agent):
    node = Node("gm-0001").register(cloud)
    first = start_agent()
    first.wait_registry(cloud)
    first.stop()
    cloud.down()
    second = start_agent()
    assert second.agent.registry.current.version == cloud.version
    assert RawClient(second.port).uplink(node.uplink()).code == n.CHANGED


def test_a_wrong_token_is_logged_and_nothing_is_lost(cloud, start_agent, caplog):
    node = Node("gm-0001").register(cloud)
    first = start_agent()
    first.wait_registry(cloud)
    first.stop()
    agent = start_agent(token="revoked-token")
    assert RawClient(agent.port).uplink(node.uplink()).code == n.CHANGED
    wait_until(
        lambda: any("refused the gateway token" in r.getMessage() for r in caplog.records),
        what="the error in the log",
    )
    assert agent.agent.store.unsent == 1
    assert cloud.received() == set()


def test_bad_flags_are_refused():
    proc = run_cli(
        "run", "--cloud", "http://x", "--token", "t", "--data", "d", "--listen", "::1:5683"
    )
    assert proc.returncode == 2
    assert "brackets" in proc.stderr
