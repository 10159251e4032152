"""An over-the-air rollout with real parts: a gas meter flashed with
version 1 of the real firmware (`kapok fw build`, `kapok fw flash`) takes
version 2 from a rollout started by `kapok fw release --rollout`: the cloud
signs the manifest, the agent caches the bundle and serves it over CoAP
Block2, the node writes it to its other slot, reboots into it, passes its
self-test and confirms. Then a deliberately broken version 3 (its app
raises at start): the node fails three boots, rolls back to version 2, and
the rollout halts by itself."""

from pathlib import Path

from kapok.protocols import bundle as bundles_format
from kapok.tools.firmware import Build, compile_mpy, write_build

from .helpers import Meter, kapok, until

OTA_TIMEOUT = 240


def broken_release(good: Path, out: Path, version: str) -> Path:
    """The bundle of `good` with an app that raises as soon as it is imported."""
    files = dict(bundles_format.unpack(good.read_bytes()))
    files["apps/meter.mpy"] = compile_mpy(
        b'raise RuntimeError("release 3 is broken on purpose")\n', "apps/meter.py"
    )
    build = Build(
        board="virtual",
        app="meter",
        version=version,
        bundle=bundles_format.pack(sorted(files.items())),
        files=len(files),
    )
    return write_build(build, out)["bundle"]


def rollout_member(stack, device: str) -> tuple[dict, dict]:
    newest = stack.admin.get("/firmware/rollouts")[0]
    rollout = stack.admin.rollout(newest["id"])
    (member,) = [d for d in rollout["devices"] if d["device"] == device]
    return rollout, member


def test_a_rollout_updates_the_meter_and_a_broken_release_rolls_back_and_halts(
    stack, bundles, tmp_path_factory
):
    folder = tmp_path_factory.mktemp("ota")
    meter = Meter(stack, folder, "gm-ota-1", unit=stack.units[0], bundle=bundles["1"])
    meter.start()
    try:
        assert any("firmware 1 " in line for line in meter.board.console), meter.board.console
        until(lambda: meter.readings("vol"), "the meter's first reading", timeout=90)

        # version 2, to every matching device
        result = kapok(
            "fw", "release", bundles["2"], "--rollout", "100", "--cloud", stack.url,
            "--token", stack.admin.token,
        )  # fmt: skip
        assert len(result.stdout.strip()) == 64  # the bundle's SHA-256
        assert "rollout" in result.stderr
        _, member = until(
            lambda: (
                (got := rollout_member(stack, meter.device))[1]["state"] in ("ok", "failed") and got
            ),
            "the meter to install version 2",
            timeout=OTA_TIMEOUT,
        )
        assert member["state"] == "ok", member
        until(
            lambda: stack.admin.device(meter.device)["fw_version"] == "2",
            "the cloud to see version 2 running",
        )
        assert meter.board.wait_console("firmware 2 confirmed", timeout=30)

        # version 3 is broken: three failed boots, back to 2, the rollout halts
        broken = broken_release(bundles["2"], folder / "dist", "3")
        kapok(
            "fw", "release", broken, "--rollout", "100", "--cloud", stack.url,
            "--token", stack.admin.token,
        )  # fmt: skip
        _, member = until(
            lambda: (got := rollout_member(stack, meter.device))[0]["state"] == "halted" and got,
            "the broken rollout to halt",
            timeout=OTA_TIMEOUT,
        )
        assert member["state"] == "rolled_back", member
        assert meter.board.wait_console("broken on purpose", timeout=30)
        before = max(r["seq"] for r in meter.readings("vol"))
        until(
            lambda: max(r["seq"] for r in meter.readings("vol")) > before,
            "readings from the meter, back on version 2",
            timeout=60,
        )
        assert stack.admin.device(meter.device)["fw_version"] == "2"
    finally:
        meter.stop()
