"""`kapok fw release` against a real `kapok cloud serve` (SQLite): a bundle
from `kapok fw build` goes up, the cloud signs its manifest with the
firmware key, the command checks that signature and the hash before it
says so; a rollout starts on request; mistakes are one line."""

import hashlib
import shutil

import pytest

from kapok.protocols import cose, messages
from tests.e2e.helpers import Stack, free_port, kapok

from .test_register import one_line_error


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("release")
    s = Stack(folder, f"sqlite:///{folder / 'kapok.db'}")
    try:
        s.set_up(agent=False)
        yield s
    finally:
        s.tear_down()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    kapok("fw", "build", "--board", "virtual", "--app", "meter", "--version", "7", "--out", out)
    return out / "kapok-virtual-meter-7.kpk"


def test_release_signs_the_manifest_and_a_second_upload_finds_it(stack, bundle):
    result = kapok("fw", "release", bundle, "--cloud", stack.url, "--token", stack.admin.token)
    digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
    assert result.stdout.strip() == digest
    assert "version 7, board virtual, app meter" in result.stderr
    (release,) = [r for r in stack.admin.releases() if r["sha256"] == digest]
    signed = bytes.fromhex(release["manifest"])
    manifest = messages.parse_manifest(
        cose.verify1(signed, bytes.fromhex(stack.admin.keys()["firmware"]))
    )
    assert manifest["sha256"].hex() == digest and manifest["size"] == bundle.stat().st_size

    again = kapok("fw", "release", bundle, "--cloud", stack.url, "--token", stack.admin.token)
    assert again.stdout.strip() == digest and "released before" in again.stderr
    assert len([r for r in stack.admin.releases() if r["sha256"] == digest]) == 1


def test_release_with_a_rollout_to_a_community(stack, bundle):
    kapok(
        "device", "register", "gm-rel-1", "--kind", "gas-meter", "--public-key", "11" * 32,
        "--gateway", stack.gateway, "--board", "virtual", "--cloud", stack.url,
        "--token", stack.admin.token,
    )  # fmt: skip
    result = kapok(
        "fw", "release", bundle, "--rollout", "100", "--community", stack.community,
        "--cloud", stack.url, "--token", stack.admin.token,
    )  # fmt: skip
    assert "rollout" in result.stderr and "1 devices" in result.stderr
    newest = stack.admin.get("/firmware/rollouts")[0]
    rollout = stack.admin.rollout(newest["id"])
    assert [d["device"] for d in rollout["devices"]] == ["gm-rel-1"]
    assert rollout["communities"] == [stack.community] and rollout["state"] == "active"


def test_a_bundle_without_its_manifest_needs_version_board_and_app(stack, bundle, tmp_path):
    alone = tmp_path / "alone.kpk"
    shutil.copyfile(bundle, alone)
    result = kapok("fw", "release", alone, "--cloud", stack.url, "--token", "t", ok=False)
    one_line_error(result, 2, "--version", "--board", "--app")
    result = kapok(
        "fw", "release", bundle, "--board", "esp32", "--cloud", stack.url, "--token", "t",
        ok=False,
    )  # fmt: skip
    one_line_error(result, 2, "board 'virtual'", "'esp32'")
    missing = kapok("fw", "release", tmp_path / "nothing.kpk", "--token", "t", ok=False)
    one_line_error(missing, 2, "nothing.kpk")


def test_a_manager_may_not_release(stack, bundle):
    stack.admin.post(
        "/users",
        {"username": "mgr", "password": "manager-pw-1", "role": "manager",
         "communities": [stack.community]},
    )  # fmt: skip
    result = kapok(
        "fw", "release", bundle, "--cloud", stack.url, "--user", "mgr", "--password",
        "manager-pw-1", ok=False,
    )  # fmt: skip
    one_line_error(result, 1, "admin")


def test_the_cloud_down_is_exit_3(bundle):
    nobody = f"http://127.0.0.1:{free_port()}"
    result = kapok("fw", "release", bundle, "--cloud", nobody, "--token", "t", ok=False)
    one_line_error(result, 3, "cannot reach the cloud")
