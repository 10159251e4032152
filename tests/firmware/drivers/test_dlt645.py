"""DL/T 645-2007 electricity meter: frames against a public meter-reading
log and the standard's field layout, the driver on a scripted UART,
fuzzing."""

import pytest
from drivers.meterbus import dlt645
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.firmware.drivers.util import (
    assert_fields,
    bcd_le,
    close,
    dlt645_frame,
    load_frames,
    unhex,
    wire,
)
from tests.firmware.fakes import FakeUART, NoisyUART

FRAMES = load_frames("dlt645")
ADDRESS = "000000000161"
PREAMBLE = b"\xfe\xfe\xfe\xfe"
ERROR_CODES = {"timeout", "crc", "frame", "address"}


def _build(v):
    if v["call"] == "read":
        return dlt645.build_read(v["address"], v["di"])
    return dlt645.build_read_address()


@pytest.mark.parametrize("vector", FRAMES["requests"], ids=lambda v: v["name"])
def test_requests_match_published_and_field_built_frames(vector):
    assert _build(vector) == unhex(vector["hex"])


@pytest.mark.parametrize("vector", FRAMES["responses"], ids=lambda v: v["name"])
def test_answers_decode_to_their_fields(vector):
    assert_fields(dlt645.parse_response(unhex(vector["hex"])), vector["expect"])


@pytest.mark.parametrize("vector", FRAMES["errors"], ids=lambda v: v["name"])
def test_bad_answers_raise_valueerror_with_a_code(vector):
    with pytest.raises(ValueError) as info:
        dlt645.parse_response(unhex(vector["hex"]))
    assert info.value.code == vector["code"]


def test_commonly_quoted_read_energy_request_for_address_1():
    # 68 01 00 00 00 00 00 68 11 04 33 33 34 33 CS 16: DI 00 01 00 00 sent
    # DI0 first, each +33H; CS = sum from the first 68H to the end of DATA
    f = dlt645.build_read("000000000001")
    assert f[:14] == bytes.fromhex("68 01 00 00 00 00 00 68 11 04 33 33 34 33")
    assert f[14] == sum(f[:14]) % 256 and f[15] == 0x16


def _energy(raw, address=ADDRESS, control=0x91):
    return dlt645_frame(wire(address), control, [0x00, 0x00, 0x01, 0x00, *bcd_le(raw, 4)])


def _request(address=ADDRESS):
    return PREAMBLE + dlt645.build_read(address)


def test_read_returns_energy_through_noise_and_partial_reads():
    f = _energy(12345678)
    uart = FakeUART([(_request(), [b"\x00\xfe\xfe\xfe", f[:5], f[5:13], None, f[13:]])])
    meter = dlt645.DLT645(uart, ADDRESS, tries=2)
    out = meter.read()
    assert meter.error is None
    assert out.keys() == {"energy"}
    assert close(out["energy"], 123456.78)
    assert meter.last["energy_raw"] == 12345678


def test_read_ignores_echo():
    uart = FakeUART([(_request(), [_energy(26)])], echo=True)
    assert close(dlt645.DLT645(uart, ADDRESS).read()["energy"], 0.26)


def test_silence_is_timeout():
    meter = dlt645.DLT645(FakeUART([(_request(), [])]), ADDRESS)
    assert meter.read() == {}
    assert meter.error == "timeout"


def test_bad_checksum_is_crc():
    f = bytearray(_energy(26))
    f[-2] = (f[-2] + 1) % 256
    meter = dlt645.DLT645(FakeUART([(_request(), [bytes(f)])]), ADDRESS)
    assert meter.read() == {}
    assert meter.error == "crc"


def test_abnormal_answer_gives_the_error_byte():
    err = dlt645_frame(wire(ADDRESS), 0xD1, [0x02])
    meter = dlt645.DLT645(FakeUART([(_request(), [err])]), ADDRESS)
    assert meter.read() == {}
    assert meter.error == "exception:2"


def test_answer_from_another_meter_is_not_taken():
    meter = dlt645.DLT645(FakeUART([(_request(), [_energy(26, address="000000000162")])]), ADDRESS)
    assert meter.read() == {}
    assert meter.error == "address"


def test_answer_for_another_data_identifier_is_a_frame_error():
    volts = dlt645_frame(wire(ADDRESS), 0x91, [0x00, 0x01, 0x01, 0x02, 0x01, 0x10])
    meter = dlt645.DLT645(FakeUART([(_request(), [volts])]), ADDRESS)
    assert meter.read() == {}
    assert meter.error == "frame"


def test_read_address_on_a_single_meter_line():
    answer = dlt645_frame(wire("201904150023"), 0x93, list(wire("201904150023")))
    uart = FakeUART([(PREAMBLE + unhex("68 aa aa aa aa aa aa 68 13 00 df 16"), [answer])])
    assert dlt645.DLT645(uart).read_address() == "201904150023"


def test_read_di_returns_raw_value_bytes():
    volts = dlt645_frame(wire(ADDRESS), 0x91, [0x00, 0x01, 0x01, 0x02, 0x01, 0x10])
    uart = FakeUART([(PREAMBLE + dlt645.build_read(ADDRESS, 0x02010100), [volts])])
    r = dlt645.DLT645(uart, ADDRESS).read_di(0x02010100)
    assert r["data"] == b"\x01\x10"  # XXX.X V, low byte first: 100.1 V


@given(raw=st.integers(0, 99999999), address=st.binary(min_size=6, max_size=6))
def test_any_energy_answer_decodes_back(raw, address):
    r = dlt645.parse_response(dlt645_frame(address, 0x91, [0, 0, 1, 0, *bcd_le(raw, 4)]))
    assert r["energy_raw"] == raw and close(r["energy"], raw / 100)
    assert r["address"] == address[::-1].hex().upper()


@given(st.binary(max_size=80))
def test_random_bytes_only_raise_valueerror(data):
    try:
        dlt645.parse_response(data)
    except ValueError as e:
        assert e.code in ERROR_CODES or e.code.startswith("exception:")


@given(st.data())
def test_mutated_answers_only_raise_valueerror(data):
    f = bytearray(_energy(data.draw(st.integers(0, 99999999))))
    for _ in range(data.draw(st.integers(1, 4))):
        f[data.draw(st.integers(0, len(f) - 1))] = data.draw(st.integers(0, 255))
    try:
        dlt645.parse_response(bytes(f[: data.draw(st.integers(0, len(f)))]))
    except ValueError as e:
        assert e.code in ERROR_CODES or e.code.startswith("exception:")


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), st.binary(min_size=1, max_size=40)), max_size=12))
def test_read_never_raises_whatever_the_line_says(chunks):
    meter = dlt645.DLT645(NoisyUART(chunks), ADDRESS)
    if not meter.read():
        assert meter.error in ERROR_CODES or meter.error.startswith("exception:")


@settings(max_examples=150)
@given(st.data())
def test_answer_inside_noise_and_arbitrary_chunking_is_found(data):
    raw = data.draw(st.integers(0, 99999999))
    noise = st.binary(max_size=12).map(lambda b: b.replace(b"\x68", b"\x00"))
    stream = data.draw(noise) + _energy(raw) + data.draw(noise)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=6))))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    meter = dlt645.DLT645(FakeUART([(_request(), chunks)]), ADDRESS)
    out = meter.read()
    assert meter.error is None
    assert close(out["energy"], raw / 100)
