"""A community's rules reach the nodes: the cloud (a real app on SQLite)
signs thresholds.set for a water-quality node and a gas meter when a
manager changes the rules; the gateway polls them; the firmware, inside
real MicroPython (check_rules.py after check_apps.py's helpers), verifies
them against the cloud's key and watches the new limits."""

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kapok.cloud.bootstrap import prepare
from kapok.cloud.core.config import Settings
from kapok.cloud.main import create_app
from tests.cloud.helpers import ADMIN_PASSWORD, Clock, World, meter_reading
from tests.firmware.apps.test_apps_on_micropython import board_files, params

HERE = Path(__file__).resolve().parent
T0 = 1767225600


def cloud_commands(tmp_path) -> dict:
    settings = Settings(
        data_dir=tmp_path / "data",
        db=f"sqlite:///{tmp_path / 'kapok.db'}",
        admin_password=ADMIN_PASSWORD,
        scrypt_n=1024,
        background_checks=False,
    )
    clock = Clock(float(T0))
    prepare(settings, now=clock())
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        world = World.build(client, clock)
        a = world.a
        world.register("wq-a1", "water-quality", a.gateway, unit=a.unit)
        world.ingest(a, [(T0, meter_reading(a.gas, 1, T0, 100.0))])  # it reads its battery
        world.ok(
            "PUT",
            f"/api/v1/communities/{a.community}/rules",
            headers=a.manager_headers,
            json={
                "quality": {"turb": [None, 3]},
                "battery_low_v": 3.1,
                "continuous_flow_h": {"gas-meter": 2},
            },
        )
        polled = world.ok("GET", "/api/v1/gateway/commands", headers=a.gateway_headers)
        by_device = {c["device"]: c["cose"] for c in polled if c["op"] == "thresholds.set"}
        assert a.gas == "gm-a1" and set(by_device) == {"wq-a1", "gm-a1"}
        return {
            "wq": by_device["wq-a1"],
            "gas": by_device["gm-a1"],
            "cloud_pub": app.state.keys.public_key("cloud").hex(),
        }


@pytest.mark.micropython
def test_nodes_apply_the_thresholds_the_cloud_signed(micropython, tmp_path):
    p = params()
    p["rules"] = cloud_commands(tmp_path)
    helpers = (HERE / "check_apps.py").read_text(encoding="utf-8")
    script = helpers + "\n" + (HERE / "check_rules.py").read_text(encoding="utf-8")
    files = board_files(False)
    files["/check/params.json"] = json.dumps(p).encode()
    out = micropython(script + "\nawait rules_main()\n", files, compiled=False)
    m = re.search(r"^ok rules (\d+)$", out, re.M)
    assert m, out
    assert int(m.group(1)) >= 11
