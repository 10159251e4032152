"""Nothing acknowledged is lost, nothing is doubled: kill -9, cloud outages,
a full quota, a full disk, readings the cloud refuses."""

import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

from kapok.protocols import coap_numbers as n
from kapok.protocols import messages

from .helpers import (
    AsyncCoapClient,
    Node,
    RawClient,
    agent_process,
    free_udp_port,
    wait_coap_up,
)


def wait_until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def exactly_once(cloud, keys):
    """Each reading in the cloud once, and the gateway never put it in two
    different batches (a resent batch keeps its id)."""
    received = cloud.received()
    missing = set(keys) - received
    assert not missing, f"{len(missing)} acknowledged readings never reached the cloud"
    doubled = {k: ids for k, ids in cloud.arrivals.items() if len(ids) > 1}
    assert not doubled, f"readings sent in more than one batch: {list(doubled)[:5]}"


async def send_all(port, bodies, *, concurrency=16, timeout=0.5, attempts=3, on_ack=None):
    """POST every (key, body); the keys that got a 2.04."""
    acked = set()
    queue = list(bodies)

    async def worker():
        client = await AsyncCoapClient.connect(port)
        try:
            while queue:
                key, body = queue.pop(0)
                response = await client.post(body, timeout=timeout, attempts=attempts)
                if response is not None and response.code == n.CHANGED:
                    assert messages.parse_reply(response.payload)["acked_seq"] == key[1]
                    acked.add(key)
                    if on_ack and on_ack(len(acked)):
                        queue.clear()  # the rest stays with the nodes
        finally:
            client.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return acked


def readings(cloud, nodes, per_node):
    out = []
    for seq in range(1, per_node + 1):
        for node in nodes:
            out.append(((node.id, seq), node.uplink(seq=seq)))
    return out


def test_kill_9_during_a_burst_loses_nothing_acknowledged(cloud, tmp_path):
    nodes = [Node(f"gm-{i:04d}").register(cloud) for i in range(20)]
    bodies = readings(cloud, nodes, 40)  # 800 uplinks
    port = free_udp_port()
    data = tmp_path / "agent"
    proc = agent_process(cloud.url, data, port)
    try:
        wait_coap_up(port)
        wait_until(lambda: (data / "registry.json").exists(), what="the registry")

        def kill_midway(count):
            if count == 250:
                proc.send_signal(signal.SIGKILL)
                return True
            return False

        acked = asyncio.run(send_all(port, bodies, on_ack=kill_midway, attempts=2))
        assert proc.wait(10) == -signal.SIGKILL
        assert 250 <= len(acked) < len(bodies)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    # everything acknowledged before the kill is in the file
    with sqlite3.connect(data / "queue.sqlite3") as conn:
        stored = set(conn.execute("SELECT device, seq FROM uplinks"))
    assert acked <= stored
    # the nodes keep what was not acknowledged and send it again after restart
    proc = agent_process(cloud.url, data, port)
    try:
        wait_coap_up(port)
        again = asyncio.run(send_all(port, [b for b in bodies if b[0] not in acked]))
        assert acked | again == {key for key, _ in bodies}
        wait_until(lambda: len(cloud.received()) == len(bodies), 30, "all readings in the cloud")
        exactly_once(cloud, [key for key, _ in bodies])
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_cloud_outage_backlog_drains_nothing_lost_or_doubled(cloud, start_agent):
    nodes = [Node(f"wm-{i:03d}", kind="water-meter").register(cloud) for i in range(10)]
    live = Node("wm-live", kind="water-meter").register(cloud)
    agent = start_agent()
    agent.wait_registry(cloud)
    cloud.down()
    bodies = readings(cloud, nodes, 64)  # 640 readings: ten batches of 64
    acked = asyncio.run(send_all(agent.port, bodies))
    assert len(acked) == len(bodies)
    assert agent.agent.store.unsent == len(bodies)
    wait_until(lambda: agent.agent.cloud.reachable is False, what="a failed forward")
    # the newest reading arrives while the backlog waits
    assert RawClient(agent.port).uplink(live.uplink()).code == n.CHANGED
    cloud.up()
    wait_until(lambda: len(cloud.received()) == len(bodies) + 1, 30, "the backlog in the cloud")
    exactly_once(cloud, [key for key, _ in bodies] + [("wm-live", 1)])
    # live traffic is not stuck behind the backlog: it went in an early batch
    batch_of_live = next(iter(cloud.arrivals[("wm-live", 1)]))
    order = [batch_id for batch_id, _ in cloud.ingest_calls]
    assert order.index(batch_of_live) <= 2, "the live reading waited for the whole backlog"
    wait_until(lambda: agent.agent.store.unsent == 0, what="an empty queue")


def test_quota_reached_is_503_with_max_age_until_forwarding_frees_space(cloud, start_agent):
    node = Node("gm-0001").register(cloud)
    agent = start_agent(max_queue_bytes=2000)  # about ten readings
    agent.wait_registry(cloud)
    cloud.down()
    client = RawClient(agent.port)
    accepted = 0
    while True:
        body = node.uplink()
        response = client.uplink(body)
        if response.code != n.CHANGED:
            break
        accepted += 1
        assert accepted < 50, "the quota never bit"
    assert accepted >= 5
    assert response.code == n.SERVICE_UNAVAILABLE
    assert response.max_age == 60
    assert b"full" in response.payload
    refused_seq = node.seq
    assert agent.agent.store.unsent == accepted  # the refused one was not stored
    # an alarm is not held to the quota: its valve.close rides on the reply
    response = client.uplink(node.uplink(seq=1000, events=[("gas.leak", 0, 30.0)]))
    assert response.code == n.CHANGED
    assert len(messages.parse_reply(response.payload)["commands"]) == 1
    cloud.up()
    wait_until(lambda: agent.agent.store.unsent == 0, 20, "the queue to drain")
    # the node kept its reading and sends it again: taken now
    response = client.uplink(body)
    assert response.code == n.CHANGED
    assert messages.parse_reply(response.payload)["acked_seq"] == refused_seq
    wait_until(lambda: ("gm-0001", refused_seq) in cloud.received(), what="the retried reading")
    assert ("gm-0001", 1000) in cloud.received()


def test_a_full_disk_is_503_and_the_queue_survives(cloud, start_agent):
    # SQLite's own page cap gives the SQLITE_FULL a full filesystem gives
    node = Node("gm-0001").register(cloud)
    agent = start_agent(max_page_count=24)
    agent.wait_registry(cloud)
    cloud.down()
    client = RawClient(agent.port)
    acked = []
    for _ in range(2000):
        response = client.uplink(node.uplink(events=[("boot", 0, "x" * 400)]))
        if response.code != n.CHANGED:
            break
        acked.append(node.seq)
    assert response.code == n.SERVICE_UNAVAILABLE, "the disk never filled"
    assert response.max_age == 60
    assert b"disk full" in response.payload
    assert acked
    cloud.up()
    wait_until(
        lambda: {("gm-0001", s) for s in acked} <= cloud.received(), 20, "the stored readings"
    )


def test_a_nearly_full_disk_is_503_except_for_alarms(cloud, start_agent, tmp_path):
    node = Node("gm-0001").register(cloud)
    free = shutil.disk_usage(tmp_path).free
    agent = start_agent(min_free_bytes=free + 2**40)  # the disk is "nearly full" from the start
    agent.wait_registry(cloud)
    client = RawClient(agent.port)
    response = client.uplink(node.uplink())
    assert response.code == n.SERVICE_UNAVAILABLE
    assert response.max_age == 60
    assert b"disk nearly full" in response.payload
    response = client.uplink(node.uplink(events=[("gas.leak", 0, 30.0)]))
    assert response.code == n.CHANGED
    assert len(messages.parse_reply(response.payload)["commands"]) == 1


def test_readings_the_cloud_rejects_are_kept_with_the_reason(cloud, start_agent, tmp_path):
    good = Node("gm-good").register(cloud)
    bad = Node("gm-bad").register(cloud)
    cloud.reject = lambda device, uplink: "device retired" if device == "gm-bad" else None
    agent = start_agent()
    agent.wait_registry(cloud)
    client = RawClient(agent.port)
    for _ in range(3):
        assert client.uplink(good.uplink()).code == n.CHANGED
        assert client.uplink(bad.uplink()).code == n.CHANGED
    wait_until(lambda: agent.agent.store.unsent == 0, what="the queue to drain")
    assert cloud.received() == {("gm-good", 1), ("gm-good", 2), ("gm-good", 3)}
    calls = len(cloud.ingest_calls)
    time.sleep(0.5)
    assert len(cloud.ingest_calls) == calls  # not retried
    agent.stop()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kapok.edge_agent",
            "status",
            "--data",
            str(tmp_path / "agent"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["rejects"][0]["reason"] == "device retired"
    assert status["rejects"][0]["count"] == 3
    with sqlite3.connect(tmp_path / "agent" / "queue.sqlite3") as conn:
        kept = conn.execute("SELECT device, seq, cose FROM rejects ORDER BY seq").fetchall()
    assert [(d, s) for d, s, _ in kept] == [("gm-bad", 1), ("gm-bad", 2), ("gm-bad", 3)]
    assert all(cose_bytes for _, _, cose_bytes in kept)  # the node's bytes, for the operator
