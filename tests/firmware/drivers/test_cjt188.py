"""CJ/T 188-2004 meter bus: frames against public examples and the field
layout of the standard, the driver against a scripted UART, fuzzing."""

import pytest
from drivers.meterbus import cjt188
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.firmware.drivers.util import (
    assert_fields,
    bcd_le,
    cjt188_frame,
    close,
    load_frames,
    unhex,
    wire,
)
from tests.firmware.fakes import FakePin, FakeUART, NoisyUART

FRAMES = load_frames("cjt188")
ADDRESS = "78330011223344"
ERROR_CODES = {"timeout", "crc", "frame", "address"}


def _build(v):
    if v["call"] == "read":
        return cjt188.build_read(v["address"], v["type"], v["ser"], v["big_endian_di"])
    if v["call"] == "valve":
        return cjt188.build_valve(v["address"], v["open"], v["type"], v["ser"], v["big_endian_di"])
    return cjt188.build_read_address(v["ser"], v["big_endian_di"])


@pytest.mark.parametrize("vector", FRAMES["requests"], ids=lambda v: v["name"])
def test_requests_match_published_and_field_built_frames(vector):
    assert _build(vector) == unhex(vector["hex"])


@pytest.mark.parametrize("vector", FRAMES["responses"], ids=lambda v: v["name"])
def test_answers_decode_to_their_fields(vector):
    assert_fields(cjt188.parse_response(unhex(vector["hex"])), vector["expect"])


@pytest.mark.parametrize("vector", FRAMES["errors"], ids=lambda v: v["name"])
def test_bad_answers_raise_valueerror_with_a_code(vector):
    with pytest.raises(ValueError) as info:
        cjt188.parse_response(unhex(vector["hex"]))
    assert info.value.code == vector["code"]


def test_read_request_is_laid_out_field_by_field():
    # 68H, T=10H, A0..A6 low byte first, C=01H, L=03H, DI0=1FH DI1=90H, SER
    expect = cjt188_frame(0x10, wire(ADDRESS), 0x01, [0x1F, 0x90, 0x00])
    assert cjt188.build_read(ADDRESS) == expect
    assert expect[2:9] == bytes([0x44, 0x33, 0x22, 0x11, 0x00, 0x33, 0x78])


def test_address_may_be_given_as_wire_bytes():
    assert cjt188.build_read(wire(ADDRESS)) == cjt188.build_read(ADDRESS)


@pytest.mark.parametrize("bad", ["123", "7833001122334G", b"\x01\x02"])
def test_bad_addresses_are_rejected(bad):
    with pytest.raises(ValueError):
        cjt188.build_read(bad)


def _answer(vol_raw=55667700, st0=0x00, address=ADDRESS, control=0x81, di=(0x1F, 0x90)):
    data = [*di, 0x00, *bcd_le(vol_raw, 4), 0x2C, *bcd_le(vol_raw, 4), 0x2C]
    data += [0x31, 0x01, 0x22, 0x11, 0x05, 0x15, 0x20, st0, 0x00]
    return cjt188_frame(0x10, wire(address), control, data)


def test_find_frame_skips_noise_and_preamble():
    f = _answer()
    buf = b"\x00\x68\x13\xfe\xfe" + f + b"\xff"
    assert cjt188.find_frame(buf) == (5, 5 + len(f))


def test_find_frame_says_how_many_bytes_are_missing():
    f = _answer()
    start, need = cjt188.find_frame(f[:20])
    assert start == -1
    assert need == len(f) - 20


@pytest.mark.parametrize(
    ("st0", "valve", "fault", "battery"),
    [
        (0x00, True, False, False),
        (0x01, False, False, False),
        (0x03, None, True, False),
        (0x04, True, False, True),
    ],
)
def test_status_bits(st0, valve, fault, battery):
    r = cjt188.parse_response(_answer(st0=st0))
    assert (r["valve"], r["valve_fault"], r["battery_low"]) == (valve, fault, battery)


# -- the driver over a scripted UART -----------------------------------------


def _request(ser=1, addr=ADDRESS):
    return b"\xfe\xfe" + cjt188.build_read(addr, 0x10, ser)


def test_read_returns_vol_and_valve_with_noise_and_partial_reads():
    f = _answer(vol_raw=12345, st0=0x01)
    chunks = [b"\x00\xfe\xfe", f[:7], f[7:20], f[20:]]
    uart = FakeUART([(_request(), chunks)])
    meter = cjt188.CJT188(uart, ADDRESS)
    out = meter.read()
    assert meter.error is None
    assert out.keys() == {"vol", "valve"}
    assert close(out["vol"], 123.45)
    assert out["valve"] is False
    assert meter.last["time"] == (2015, 5, 11, 22, 1, 31)


def test_read_ignores_the_adapters_echo_of_the_request():
    uart = FakeUART([(_request(), [_answer()])], echo=True)
    meter = cjt188.CJT188(uart, ADDRESS)
    assert close(meter.read()["vol"], 556677.0)


def test_stale_bytes_are_drained_before_the_request():
    stale = _answer(vol_raw=1)  # a late answer to an earlier request
    uart = FakeUART([(_request(), [_answer(vol_raw=200)])], stale=stale)
    meter = cjt188.CJT188(uart, ADDRESS)
    assert close(meter.read()["vol"], 2.0)


def test_silence_is_a_timeout():
    uart = FakeUART([(_request(), [None, None])])
    meter = cjt188.CJT188(uart, ADDRESS)
    assert meter.read() == {}
    assert meter.error == "timeout"


def test_preamble_only_is_a_timeout_and_a_cut_frame_is_frame():
    meter = cjt188.CJT188(FakeUART([(_request(), [b"\xfe\xfe"])]), ADDRESS)
    assert meter.read() == {} and meter.error == "timeout"
    meter = cjt188.CJT188(FakeUART([(_request(), [_answer()[:30]])]), ADDRESS)
    assert meter.read() == {} and meter.error == "frame"


def test_bad_checksum_is_crc():
    f = bytearray(_answer())
    f[-2] ^= 0x01
    meter = cjt188.CJT188(FakeUART([(_request(), [bytes(f)])]), ADDRESS)
    assert meter.read() == {}
    assert meter.error == "crc"


def test_an_answer_from_another_meter_is_not_taken():
    other = _answer(address="00000000000099")
    meter = cjt188.CJT188(FakeUART([(_request(), [other])]), ADDRESS)
    assert meter.read() == {}
    assert meter.error == "address"


def test_wildcard_address_takes_any_meter():
    uart = FakeUART([(_request(addr=cjt188.ANY), [_answer(address="00000000000099")])])
    assert close(cjt188.CJT188(uart, cjt188.ANY).read()["vol"], 556677.0)


def test_error_answer_is_an_exception_code():
    err = cjt188_frame(0x10, wire(ADDRESS), 0xC1, [0x01, 0x04, 0x00])
    meter = cjt188.CJT188(FakeUART([(_request(), [err])]), ADDRESS)
    assert meter.read() == {}
    assert meter.error == "exception:4"


def test_error_clears_after_a_good_read():
    uart = FakeUART([(_request(1), [None, None]), (_request(2), [_answer()])])
    meter = cjt188.CJT188(uart, ADDRESS)
    meter.read()
    assert meter.error == "timeout"
    assert meter.read()
    assert meter.error is None


@pytest.mark.parametrize(("open_valve", "op"), [(True, 0x55), (False, 0x99)])
def test_set_valve_sends_a017_and_takes_the_ack(open_valve, op):
    ack = cjt188_frame(
        0x10, wire(ADDRESS), 0x84, [0x17, 0xA0, 0x01, 0x00 if open_valve else 0x01, 0]
    )
    req = b"\xfe\xfe" + cjt188_frame(0x10, wire(ADDRESS), 0x04, [0x17, 0xA0, 0x01, op])
    meter = cjt188.CJT188(FakeUART([(req, [ack])]), ADDRESS)
    assert meter.set_valve(open_valve) is True
    assert meter.error is None


def test_set_valve_without_ack_is_false():
    meter = cjt188.CJT188(FakeUART([(None, [None, None])]), ADDRESS)
    assert meter.set_valve(False) is False
    assert meter.error == "timeout"


def test_driver_enable_pin_frames_the_transmission():
    de = FakePin(0)
    meter = cjt188.CJT188(FakeUART([(_request(), [_answer()])]), ADDRESS, de=de)
    meter.read()
    assert de.history == [1, 0]


def test_big_endian_di_meters():
    uart = FakeUART(
        [(b"\xfe\xfe" + cjt188.build_read(ADDRESS, 0x10, 1, True), [_answer(di=(0x90, 0x1F))])]
    )
    meter = cjt188.CJT188(uart, ADDRESS, big_endian_di=True)
    assert close(meter.read()["vol"], 556677.0)


# -- properties -----------------------------------------------------------------


@given(
    vol=st.integers(0, 99999999),
    settle=st.integers(0, 99999999),
    st0=st.integers(0, 255),
    address=st.binary(min_size=7, max_size=7),
    ser=st.integers(0, 255),
)
def test_any_answer_built_from_fields_decodes_back(vol, settle, st0, address, ser):
    data = [0x1F, 0x90, ser, *bcd_le(vol, 4), 0x2C, *bcd_le(settle, 4), 0x2C]
    data += [0, 0, 0, 1, 1, 0x24, 0x20, st0, 0x5A]
    r = cjt188.parse_response(cjt188_frame(0x10, address, 0x81, data))
    assert r["vol_raw"] == vol and close(r["vol"], vol / 100)
    assert close(r["vol_settle"], settle / 100)
    assert r["time"] == (2024, 1, 1, 0, 0, 0)
    assert r["status"] == st0 | 0x5A00
    assert r["ser"] == ser
    assert r["address"] == address[::-1].hex().upper()


@given(st.binary(max_size=80))
def test_random_bytes_only_raise_valueerror(data):
    try:
        cjt188.parse_response(data)
    except ValueError as e:
        assert e.code in ERROR_CODES | {f"exception:{i}" for i in range(256)}


@given(st.data())
def test_mutated_answers_only_raise_valueerror(data):
    f = bytearray(_answer(st0=data.draw(st.integers(0, 255))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(f) - 1))
        f[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(f)))
    try:
        cjt188.parse_response(bytes(f[:cut]))
    except ValueError as e:
        assert e.code in ERROR_CODES or e.code.startswith("exception:")


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), st.binary(min_size=1, max_size=40)), max_size=12))
def test_read_never_raises_whatever_the_line_says(chunks):
    meter = cjt188.CJT188(NoisyUART(chunks), ADDRESS)
    out = meter.read()
    if out:
        assert meter.error is None and "vol" in out
    else:
        assert meter.error in ERROR_CODES or meter.error.startswith("exception:")


def _chunked(draw, stream):
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=6)))
    out, last = [], 0
    for c in [*cuts, len(stream)]:
        if c > last:
            out.append(stream[last:c])
            last = c
    return out


@settings(max_examples=150)
@given(st.data())
def test_answer_inside_noise_and_arbitrary_chunking_is_found(data):
    vol = data.draw(st.integers(0, 99999999))
    noise = st.binary(max_size=12).map(lambda b: b.replace(b"\x68", b"\x00"))
    stream = data.draw(noise) + _answer(vol_raw=vol) + data.draw(noise)
    uart = FakeUART([(_request(), _chunked(data.draw, stream))])
    meter = cjt188.CJT188(uart, ADDRESS)
    out = meter.read()
    assert meter.error is None
    assert close(out["vol"], vol / 100)


def test_line_junk_without_an_answer_is_still_a_timeout():
    # 00H/FFH is what an undriven RS-485/M-Bus line clocks in: not an answer
    meter = cjt188.CJT188(FakeUART([(_request(), [b"\x00\xff\x00\xfe"])]), ADDRESS)
    assert meter.read() == {} and meter.error == "timeout"
    meter = cjt188.CJT188(FakeUART([(_request(), [b"\x12\x34\x56"])]), ADDRESS)
    assert meter.read() == {} and meter.error == "frame"
