"""Firmware pages: upload a release (its manifest signed), start a rollout,
follow it per device, halt and resume it; managers only watch."""

import re

from kapok.protocols import cose, messages


def test_upload_start_follow_halt_and_resume(admin_web, world):
    r = admin_web.post(
        "/firmware/releases",
        data={"version": "1.2.0", "board": "esp32", "app": "meter"},
        files={"file": ("bundle.bin", b"\x00fake mpy bundle" * 10, "application/octet-stream")},
    )
    assert r.status_code == 303
    (release,) = world.ok("GET", "/api/v1/firmware/releases")
    keys = world.ok("GET", "/api/v1/keys")
    firmware_key = next(k for k in keys if k["name"] == "firmware" and not k["retired_at"])
    manifest = cose.verify1(
        bytes.fromhex(release["manifest"]), bytes.fromhex(firmware_key["public_key"])
    )
    assert messages.parse_manifest(manifest)["version"] == "1.2.0"
    assert "1.2.0" in admin_web.get("/firmware").text

    r = admin_web.post(
        "/firmware/rollouts",
        data={"release": release["id"], "communities": [world.a.community]},
    )
    assert r.status_code == 303
    rollout = int(r.headers["location"].rsplit("/", 1)[1])
    page = admin_web.get(r.headers["location"]).text
    assert world.a.gas in page and world.a.water in page and world.b.gas not in page
    assert "进行中" in page and "已下发" in page

    assert (
        admin_web.post(
            f"/firmware/rollouts/{rollout}/halt", data={"reason": "测试暂停"}
        ).status_code
        == 303
    )
    got = world.ok("GET", f"/api/v1/firmware/rollouts/{rollout}")
    assert (got["state"], got["halt_reason"]) == ("halted", "测试暂停")
    assert "已暂停" in admin_web.get(f"/firmware/rollouts/{rollout}").text
    assert admin_web.post(f"/firmware/rollouts/{rollout}/resume").status_code == 303
    assert world.ok("GET", f"/api/v1/firmware/rollouts/{rollout}")["state"] == "active"


def test_managers_watch_rollouts_but_cannot_start_or_halt_them(manager_a, manager_b, world, seeded):
    rollout = seeded["rollout_id"]
    page = manager_a.get("/firmware").text
    assert f'href="/firmware/rollouts/{rollout}"' in page
    assert 'action="/firmware/rollouts"' not in page and 'enctype="multipart/form-data"' not in page
    detail = manager_a.get(f"/firmware/rollouts/{rollout}").text
    assert world.a.gas in detail and not re.search(r'action="[^"]*/halt"', detail)
    assert manager_a.post(f"/firmware/rollouts/{rollout}/halt").status_code == 403
    assert world.ok("GET", f"/api/v1/firmware/rollouts/{rollout}")["state"] == "active"
    # B's manager does not even see that it exists
    assert f"/firmware/rollouts/{rollout}" not in manager_b.get("/firmware").text
    assert manager_b.get(f"/firmware/rollouts/{rollout}").status_code == 404


def test_an_empty_bundle_is_refused(admin_web, world):
    r = admin_web.post(
        "/firmware/releases",
        data={"version": "1.2.1", "board": "esp32", "app": "meter"},
        files={"file": ("bundle.bin", b"", "application/octet-stream")},
    )
    assert r.status_code == 422
    assert world.ok("GET", "/api/v1/firmware/releases") == []
