"""The whole chain with real parts: a gas meter running the real firmware on
a virtual board → `kapok agent run` → `kapok cloud serve` on PostgreSQL →
the API and the dashboard in a real browser; and back: a valve command
from the dashboard to the meter; and a gas leak handled while the cloud is
down.

The tests of this module share one cloud, agent and meter and run in file
order (the last one stops and restarts the cloud)."""

import time
from datetime import datetime

import pytest
from playwright.sync_api import expect

from kapok.protocols import messages

from .helpers import Meter, until


@pytest.fixture(scope="module")
def meter(stack, bundles, tmp_path_factory):
    folder = tmp_path_factory.mktemp("boards")
    m = Meter(stack, folder, "gm-e2e-1", unit=stack.units[0], bundle=bundles["1"])
    m.start()
    try:
        yield m
    finally:
        m.stop()


def test_a_reading_from_the_real_firmware_reaches_the_api_and_the_dashboard(stack, meter, page):
    readings = until(lambda: meter.readings("vol"), "the meter's first reading in the API")
    first = readings[0]
    assert first["n"] == "vol" and first["u"] == "m3"
    assert first["v"] == pytest.approx(120.5, abs=0.1)  # the emulated CJ/T 188 register
    assert isinstance(first["seq"], int)
    device = stack.admin.device(meter.device)
    assert device["last_seq"] is not None and device["fw_version"] in (None, "1")

    page.goto(f"{stack.url}/devices/{meter.device}")
    expect(page.locator("h1")).to_contain_text(meter.device)
    row = page.locator("table.history tbody tr").first
    expect(row).to_contain_text("m³")
    expect(row).to_contain_text("120.")
    expect(page.locator(".valve-state")).to_have_text("Open")


def test_a_valve_command_from_the_dashboard_reaches_the_meter_and_is_confirmed(stack, meter, page):
    page.goto(f"{stack.url}/devices/{meter.device}")
    page.click("text=Close valve")
    expect(page.locator("h1")).to_have_text("Confirm valve command")
    assert stack.admin.commands(meter.device) == []  # nothing sent before the confirmation
    page.click("#confirm")
    expect(page.locator("h1")).to_contain_text("Close valve")
    clicked = time.time()

    (command,) = stack.admin.commands(meter.device)
    assert command["op"] == "valve.close" and command["authority"] == "cloud"
    # the gateway holds it until the meter's next uplink, whose reply carries it
    assert meter.board.wait_for("output", timeout=60, name="motor.close", value=1)
    done = until(
        lambda: (c := stack.admin.commands(meter.device)[0])["state"] == "done" and c,
        "the meter's result to come back",
    )
    assert done["result_code"] == messages.OK
    closed = until(
        lambda: [r for r in meter.readings("valve") if r["t"] >= clicked - 1 and r["v"] is False],
        "a reading showing the valve shut",
    )
    assert closed[0]["v"] is False
    assert meter.board.get()["valve.state"] == "closed"
    page.reload()  # the page also refreshes itself while the command runs
    expect(page.locator(".state-confirmed").first).to_be_visible()


def test_a_gas_leak_shuts_the_valve_with_the_cloud_down_and_the_alarm_arrives_later(
    stack, bundles, tmp_path_factory, page
):
    leak = Meter(
        stack,
        tmp_path_factory.mktemp("boards"),
        "gm-e2e-2",
        unit=stack.units[1],
        bundle=bundles["1"],
    )
    leak.start()
    try:
        until(lambda: leak.readings("valve"), "the second meter's first reading", timeout=90)
        stack.cloud.stop()
        assert not stack.cloud.running

        started = time.time()
        t0 = time.monotonic()
        leak.board.set({"methane": 30})  # %LEL at the meter's head: a leak
        shut = leak.board.wait_for("output", timeout=30, name="motor.close", value=1)
        assert shut is not None, leak.board.console[-10:]
        reaction = time.monotonic() - t0
        print(f"valve motor on {reaction * 1000:.0f} ms after the methane rose")  # (pytest -s)
        # The goal is < 1 s (benchmarks measure it); a generous bound here
        # so a loaded CI machine does not fail the test on timing alone.
        assert reaction < 5, f"the valve started closing {reaction:.2f} s after the leak"

        signed = until(
            lambda: [
                e
                for e in stack.agent_log()
                if e.get("message") == "fail-safe command signed" and e.get("device") == leak.device
            ],
            "the agent to sign valve.close with its own key",
            timeout=30,
        )
        assert signed[0]["op"] == "valve.close" and signed[0]["event"] == "gas.leak"
        at = datetime.fromisoformat(signed[0]["time"]).timestamp()
        assert at >= started - 0.5  # signed after the leak began, with the cloud already down
        print(f"gateway signed valve.close {(at - started) * 1000:.0f} ms after the methane rose")
        assert not stack.cloud.running  # all of it without the cloud
        until(lambda: leak.board.get()["valve.state"] == "closed", "the valve to shut")
        # the agent holds the alarm (and the meter's result) until the cloud is back
        until(lambda: stack.agent_status()["queue"]["depth"] > 0, "uplinks waiting at the agent")

        stack.start_cloud()
        alarm = until(
            lambda: [a for a in stack.admin.alarms(device=leak.device) if a["code"] == "gas.leak"],
            "the gas.leak alarm to reach the cloud",
        )[0]
        assert alarm["state"] == "open" and alarm["severity"] == "critical"
        local = until(
            lambda: [c for c in stack.admin.commands(leak.device) if c["source"] == "local"],
            "the gateway's own valve.close to be reported to the cloud",
        )[0]
        assert local["op"] == "valve.close" and local["authority"] == stack.gateway
        assert local["event"] == "gas.leak" and local["created_at"] >= started - 1

        page.goto(f"{stack.url}/alarms")
        expect(page.locator("tr", has_text=leak.device)).to_contain_text("Gas leak")
    finally:
        leak.stop()
