"""`kapok fw build` and `kapok fw flash`: a reproducible bundle of mpy-cross
bytecode with its manifest, and the board image it makes, put on a board
through its REPL (the virtual board's serial console, with mpremote) or
into a virtual board's image folder; the flashed firmware boots and runs.

Nothing here fakes a board: the serial tests talk to the virtual board's
MicroPython through a pseudo-terminal with the real mpremote."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import tty
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kapok.protocols import bundle, cbor, coap, cose, messages
from kapok.tools import board as board_mod
from kapok.tools import firmware
from kapok.tools.cli import app
from kapok.tools.virtualboard import VirtualBoard, image_sources
from kapok.tools.virtualboard.console import SerialConsole
from tests.micropython.harness import run_micropython

runner = CliRunner()
KAPOK = [sys.executable, "-m", "kapok.tools"]


def kapok(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, code):
    assert result.exit_code == code, result.output
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def meter_build():
    return firmware.build("virtual", "meter")


# -- build ----------------------------------------------------------------------------------


def test_build_writes_bundle_manifest_and_summary_and_prints_the_sha256(tmp_path):
    result = kapok("fw", "build", "--board", "esp32", "--app", "meter", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    name = f"kapok-esp32-meter-{firmware.firmware_version()}"
    data = (tmp_path / f"{name}.kpk").read_bytes()
    digest = hashlib.sha256(data).digest()
    assert result.stdout.strip() == digest.hex()
    manifest = messages.parse_manifest((tmp_path / f"{name}.manifest.cbor").read_bytes())
    assert manifest == {
        "version": firmware.firmware_version(),
        "board": "esp32",
        "app": "meter",
        "size": len(data),
        "sha256": digest,
    }
    summary = json.loads((tmp_path / f"{name}.json").read_text())
    assert summary["sha256"] == digest.hex() and summary["size"] == len(data)
    assert summary["files"] == len(bundle.unpack(data))
    assert "mpy" in summary["mpy_cross"]


def test_same_sources_give_the_same_bytes_from_any_folder_and_cwd(tmp_path):
    # two separate processes, different output folders and working folders
    digests = []
    for n in range(2):
        cwd = tmp_path / f"cwd{n}"
        cwd.mkdir()
        out = tmp_path / f"out{n}" / "deeper" if n else Path("dist")
        proc = subprocess.run(
            [*KAPOK, "fw", "build", "--board", "rp2", "--app", "hub", "--out", str(out)],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        folder = out if out.is_absolute() else cwd / out
        digests.append((proc.stdout.strip(), next(folder.glob("*.kpk")).read_bytes()))
    assert digests[0] == digests[1]
    # nothing of the machine leaks into the bytecode: no folder of this build
    data = digests[0][1]
    assert str(tmp_path).encode() not in data
    assert str(firmware.source_root()).encode() not in data


def test_bundle_holds_the_compiled_lib_of_the_image(meter_build):
    files = dict(bundle.unpack(meter_build.bundle))
    lib = {
        p.removeprefix("/lib/")[:-3] + ".mpy"
        for p in image_sources("virtual", "meter")
        if p.startswith("/lib/")
    }
    assert set(files) == lib
    assert all(data[:1] == b"M" for data in files.values())  # mpy-cross bytecode
    # the app with the app modules it imports, and no other app
    apps = {p for p in files if p.startswith("apps/")}
    assert {"apps/meter.mpy", "apps/base.mpy", "apps/rules.mpy"} <= apps
    assert not apps & {"apps/hub.mpy", "apps/water_quality.mpy"}
    # every driver, the runtime, protocols, the board's modules
    assert "drivers/meterbus/cjt188.mpy" in files and "runtime/node.mpy" in files
    assert {"board.mpy", "peripherals.mpy", "boardlib.mpy", "protocols/cose.mpy"} <= set(files)
    # boot.py and main.py are not in a bundle: OTA replaces /lib only
    assert not [p for p in files if p.endswith((".py", "boot.mpy", "main.mpy"))]


def test_the_version_is_the_one_the_node_reports(tmp_path):
    built = firmware.build("virtual", "hub", "2.0.1-rc1")
    runtime_init = dict(bundle.unpack(built.bundle))["runtime/__init__.mpy"]
    out = run_micropython(
        "import sys\nsys.path.insert(0, '/fw')\nimport runtime\nprint(runtime.VERSION)",
        {"/fw/runtime/__init__.mpy": runtime_init},
        with_protocols=False,
    )
    assert out.strip() == "2.0.1-rc1"
    assert messages.parse_manifest(built.manifest)["version"] == "2.0.1-rc1"
    # by default a build is the firmware's own version, which the node reports
    default = firmware.build("virtual", "hub")
    assert default.version == firmware.firmware_version()
    assert default.sha256 != built.sha256


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--board", "arduino", "--app", "meter"], "no board 'arduino'"),
        (["--board", "esp32", "--app", "toaster"], "no app 'toaster'"),
        (["--board", "esp32", "--app", "base"], "no app 'base'"),  # shared module, not an app
        (["--board", "esp32"], "--app"),
        (["--app", "meter"], "--board"),
        (["--board", "esp32", "--app", "meter", "--version", "1.0 final"], "bad version"),
        (["--board", "esp32", "--app", "meter", "--version", "../x"], "bad version"),
    ],
)
def test_wrong_arguments_are_one_line_and_exit_2(tmp_path, args, needle):
    result = kapok("fw", "build", *args, "--out", tmp_path / "out")
    one_line_error(result, 2)
    assert needle in result.stderr
    assert not (tmp_path / "out").exists()


def test_mpy_cross_failure_names_the_file(tmp_path, monkeypatch):
    broken = tmp_path / "broken.py"
    broken.write_text("def broken(:\n    pass\n")
    real = firmware.image_sources

    def with_a_broken_driver(board, app_name, root=None):
        sources = real(board, app_name, root)
        sources["/lib/drivers/broken.py"] = broken
        return sources

    monkeypatch.setattr(firmware, "image_sources", with_a_broken_driver)
    result = kapok("fw", "build", "--board", "esp32", "--app", "meter", "--out", tmp_path / "o")
    one_line_error(result, 1)
    assert "mpy-cross failed on drivers/broken.py" in result.stderr
    assert not (tmp_path / "o").exists()


def test_help_teaches_the_commands():
    for command in ("build", "flash"):
        result = kapok("fw", command, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout
    assert "build" in kapok("fw", "--help").stdout


# -- the flash plan -------------------------------------------------------------------------


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_plan_writes_what_changed_removes_stale_lib_files_and_boot_py_last():
    files = {
        "/boot.py": b"boot",
        "/main.py": b"main",
        "/lib/a.mpy": b"a2",
        "/lib/b.mpy": b"b",
        "/lib/c/d.mpy": b"d",
    }
    on_board = {
        "/boot.py": sha(b"old boot"),
        "/main.py": sha(b"main"),
        "/lib/a.mpy": sha(b"a1"),
        "/lib/b.mpy": sha(b"b"),
        "/lib/old.py": sha(b"stale source that would shadow old.mpy"),
    }
    plan = firmware.plan_flash(files, on_board)
    assert [p for p, _ in plan.write] == ["/lib/a.mpy", "/lib/c/d.mpy", "/boot.py"]
    assert plan.unchanged == ["/lib/b.mpy", "/main.py"]
    assert plan.remove == ["/lib/old.py"]
    assert plan.bytes_to_write == len(b"a2d") + len(b"boot")


def test_image_files_are_the_bundle_under_lib_and_the_boot_files(meter_build):
    files = firmware.image_files(meter_build.bundle)
    root = firmware.source_root() / "firmware"
    assert files["/boot.py"] == (root / "boot.py").read_bytes()
    assert files["/main.py"] == (root / "main.py").read_bytes()
    lib = {p for p in files if p.startswith("/lib/")}
    assert lib == {"/lib/" + p for p, _ in bundle.unpack(meter_build.bundle)}


# -- flash into a virtual board's image folder -----------------------------------------------


def flashed_names(folder):
    return {"/" + p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_flash_virtual_lays_out_the_board_then_writes_only_what_changed(tmp_path):
    img = tmp_path / "img"
    first = kapok("fw", "flash", "--virtual", img, "--app", "meter")
    assert first.exit_code == 0, first.output
    names = flashed_names(img)
    assert {"/boot.py", "/main.py", "/lib/runtime/node.mpy", "/lib/apps/meter.mpy"} <= names
    assert not [n for n in names if n.endswith(".new")]

    again = kapok("fw", "flash", "--virtual", img, "--app", "meter")
    assert ": 0 files written (0 bytes)" in again.stdout

    # another app: its module in, the old one out, the node's state kept
    (img / "data").mkdir()
    (img / "data" / "seq0.cbor").write_bytes(cbor.dumps([3, 192]))
    (img / "data" / "slots.cbor").write_bytes(cbor.dumps({"active": "a"}))
    (img / "slots" / "a" / "lib").mkdir(parents=True)
    (img / "slots" / "a" / "lib" / "board.mpy").write_bytes(b"an older update")
    hub = kapok("fw", "flash", "--virtual", img, "--app", "hub")
    assert hub.exit_code == 0, hub.output
    names = flashed_names(img)
    assert "/lib/apps/hub.mpy" in names and "/lib/apps/meter.mpy" not in names
    assert (img / "data" / "seq0.cbor").read_bytes() == cbor.dumps([3, 192])
    # the update that was active would have run instead: it is gone
    assert not (img / "data" / "slots.cbor").exists() and not (img / "slots" / "a").exists()


def test_flash_a_bundle_file_checks_it_against_its_manifest(tmp_path):
    out = tmp_path / "dist"
    assert kapok("fw", "build", "--board", "virtual", "--app", "hub", "--out", out).exit_code == 0
    kpk = next(out.glob("*.kpk"))
    ok = kapok("fw", "flash", "--virtual", tmp_path / "img", "--bundle", kpk)
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "img" / "lib" / "apps" / "hub.mpy").is_file()

    wrong_board = kapok(
        "fw", "flash", "--virtual", tmp_path / "x", "--board", "esp32", "--bundle", kpk
    )
    one_line_error(wrong_board, 2)
    assert "is for board virtual" in wrong_board.stderr

    kpk.write_bytes(kpk.read_bytes()[:-1] + b"\x01")  # one byte changed
    tampered = kapok("fw", "flash", "--virtual", tmp_path / "y", "--bundle", kpk)
    one_line_error(tampered, 1)
    assert "does not match its manifest" in tampered.stderr

    lone = tmp_path / "lone.kpk"
    lone.write_bytes(b"KPK1\x00")
    no_board = kapok("fw", "flash", "--virtual", tmp_path / "z", "--bundle", lone, "--board", "rp2")
    assert no_board.exit_code == 0  # no manifest: the board given is trusted
    garbage = tmp_path / "garbage.kpk"
    garbage.write_bytes(b"PK\x03\x04 a zip file")
    one_line_error(kapok("fw", "flash", "--virtual", tmp_path / "w", "--bundle", garbage), 1)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--board", "esp32", "--app", "meter"], "--port"),
        (["--port", "/dev/null", "--virtual", "x", "--app", "meter"], "not both"),
        (["--port", "/dev/null", "--board", "esp32"], "nothing to flash"),
        (["--port", "/dev/null", "--app", "meter"], "--board"),
        (["--port", "/dev/null", "--board", "esp32", "--app", "meter", "--erase"], "--erase"),
        (["--virtual", "x", "--micropython", "mp.bin"], "no --micropython"),
        (["--port", "/dev/null", "--board", "rp2", "--micropython", "mp.uf2"], "BOOTSEL"),
        (
            ["--port", "/dev/null", "--board", "esp32", "--micropython", "nope.bin"],
            "no MicroPython",
        ),
        (["--port", "/dev/null", "--bundle", "a.kpk", "--app", "meter"], "not both"),
    ],
)
def test_flash_wrong_arguments_are_one_line_and_exit_2(tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    result = kapok("fw", "flash", *args)
    one_line_error(result, 2)
    assert needle in result.stderr


def test_flash_to_a_missing_port_is_board_not_found_exit_3(tmp_path):
    result = kapok(
        "fw", "flash", "--port", tmp_path / "ttyUSB9", "--board", "esp32", "--app", "meter"
    )
    one_line_error(result, 3)
    assert "board not found" in result.stderr


@pytest.fixture
def silent_port():
    """A serial port where nothing answers: a board without MicroPython."""
    master, slave = os.openpty()
    tty.setraw(slave)
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_flash_to_a_board_that_does_not_answer_is_one_line_exit_3(silent_port, monkeypatch):
    monkeypatch.setattr(board_mod, "REPL_TIMEOUT_S", 1)
    result = kapok("fw", "flash", "--port", silent_port, "--board", "esp32", "--app", "meter")
    one_line_error(result, 3)
    assert "does not answer" in result.stderr


def test_esptool_failure_is_one_line_exit_3(silent_port, tmp_path):
    image = tmp_path / "ESP32_GENERIC.bin"
    image.write_bytes(b"\xe9" + bytes(4095))
    result = kapok("fw", "flash", "--port", silent_port, "--board", "esp32", "--micropython", image)
    one_line_error(result, 3)
    assert "esptool could not flash MicroPython" in result.stderr
    assert "Failed to connect to ESP32" in result.stderr


# -- flash over the board's serial console, and boot what was flashed ------------------------


@pytest.fixture
def virtual_serial(tmp_path):
    """A blank virtual board (powered off) and its USB serial console."""
    img = tmp_path / "flash"
    img.mkdir()
    with VirtualBoard(img, power_on=False) as vb, SerialConsole(vb) as console:
        yield img, vb, console


def test_flash_over_serial_then_the_board_boots_the_flashed_firmware(virtual_serial):
    img, vb, console = virtual_serial
    result = kapok("fw", "flash", "--port", console.port, "--board", "virtual", "--app", "meter")
    assert result.exit_code == 0, result.output
    assert "the board restarts" in result.stdout
    built = firmware.image_files(firmware.build("virtual", "meter").bundle)
    on_flash = {p: (img / p.lstrip("/")).read_bytes() for p in flashed_names(img)}
    assert {p: d for p, d in on_flash.items() if p in built} == built
    assert not set(on_flash) - set(built)  # nothing else, no temporary files
    # the board restarted into the flashed firmware: the node, not provisioned yet
    line = vb.wait_console("provision this node first", timeout=30)
    assert line is not None, "\n".join(vb.console)


def test_built_bundle_flashed_and_provisioned_boots_and_signs_its_uplink(tmp_path):
    out = tmp_path / "dist"
    assert kapok("fw", "build", "--board", "virtual", "--app", "meter", "--out", out).exit_code == 0
    img = tmp_path / "img"
    flashed = kapok("fw", "flash", "--virtual", img, "--bundle", next(out.glob("*.kpk")))
    assert flashed.exit_code == 0, flashed.output
    key = tmp_path / "gm-0001a3.key"
    pub = kapok("device", "keygen", "gm-0001a3", "-o", key).stdout.strip()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gw:
        gw.bind(("127.0.0.1", 0))
        gw.settimeout(30)
        port = gw.getsockname()[1]
        provisioned = kapok(
            "device", "provision", "--virtual", img, "--key-file", key,
            "--gateway", f"127.0.0.1:{port}", "--kind", "gas-meter",
        )  # fmt: skip
        assert provisioned.exit_code == 0, provisioned.output
        with VirtualBoard(img) as vb:
            datagram, _ = gw.recvfrom(2048)
            req = coap.Message.decode(datagram)
            assert req.uri_path == ["u"]
            assert cose.kid(req.payload) == b"gm-0001a3"
            uplink = messages.parse_uplink(cose.verify1(req.payload, bytes.fromhex(pub)))
            assert "boot" in [e[0] for e in uplink["events"]], vb.console
