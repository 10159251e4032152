"""Modbus RTU master: CRC-16/MODBUS, ADUs against published examples, the
master on a scripted UART (exceptions, timeouts, wrong slave/function,
short frames, garbage), fuzzing."""

import pytest
from drivers.modbus import rtu
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.firmware.drivers.util import assert_fields, load_frames, unhex
from tests.firmware.fakes import FakePin, FakeUART, NoisyUART

FRAMES = load_frames("modbus")
ERROR_CODES = {"timeout", "crc", "frame"}


def crc_bitwise_spec(data):
    """CRC-16/MODBUS as the Modbus over Serial Line spec (6.2.2) states it:
    preset FFFFH, XOR each byte in, shift right 8 times, XOR A001H after a
    1 falls out."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            lsb = reg & 1
            reg >>= 1
            if lsb:
                reg ^= 0xA001
    return reg


def adu(*pdu):
    body = bytes(pdu)
    c = crc_bitwise_spec(body)
    return body + bytes([c & 0xFF, c >> 8])


@pytest.mark.parametrize("vector", FRAMES["crc"], ids=lambda v: v["data"] or "empty")
def test_crc_values(vector):
    assert rtu.crc16(unhex(vector["data"])) == vector["crc"]


def test_crc_catalogue_check_value():
    assert rtu.crc16(b"123456789") == 0x4B37


@given(st.binary(max_size=64))
def test_crc_matches_the_specs_procedure(data):
    assert rtu.crc16(data) == crc_bitwise_spec(data)


def _build(v):
    if v["call"] == "read":
        return rtu.build_read(v["slave"], v["function"], v["register"], v["count"])
    return rtu.build_write(v["slave"], v["register"], v["value"])


@pytest.mark.parametrize("vector", FRAMES["requests"], ids=lambda v: v["name"])
def test_requests(vector):
    assert _build(vector) == unhex(vector["hex"])


@pytest.mark.parametrize("vector", FRAMES["responses"], ids=lambda v: v["name"])
def test_responses(vector):
    assert_fields(rtu.parse_response(unhex(vector["hex"])), vector["expect"])


@pytest.mark.parametrize("vector", FRAMES["errors"], ids=lambda v: v["name"])
def test_error_responses(vector):
    with pytest.raises(ValueError) as info:
        rtu.parse_response(unhex(vector["hex"]))
    assert info.value.code == vector["code"]


@pytest.mark.parametrize(
    "args",
    [(0, 3, 0, 1), (248, 3, 0, 1), (1, 5, 0, 1), (1, 3, 0, 0), (1, 3, 0, 126), (1, 3, 65536, 1)],
)
def test_build_read_rejects_out_of_range_arguments(args):
    with pytest.raises(ValueError):
        rtu.build_read(*args)


# -- the master -------------------------------------------------------------------


def test_read_holding_registers():
    req = unhex("01 03 00 00 00 02 c4 0b")
    uart = FakeUART([(req, [adu(1, 3, 4, 0x02, 0x9A, 0xFF, 0x38)])])
    m = rtu.Master(uart)
    assert m.read_holding(1, 0, 2) == [0x029A, 0xFF38]
    assert m.error is None


def test_read_input_registers_in_pieces():
    answer = adu(1, 4, 2, 0x12, 0x34)
    uart = FakeUART([(rtu.build_read(1, 4, 8, 1), [answer[:2], answer[2:4], answer[4:]])])
    assert rtu.Master(uart).read_input(1, 8) == [0x1234]


def test_exception_answer():
    uart = FakeUART([(None, [unhex("01 83 02 c0 f1")])])
    m = rtu.Master(uart)
    assert m.read_holding(1, 0x200, 1) is None
    assert m.error == "exception:2"


def test_timeout():
    m = rtu.Master(FakeUART([(None, [None, None, None])]))
    assert m.read_holding(1, 0, 1) is None
    assert m.error == "timeout"


def test_short_frame_then_silence():
    answer = adu(1, 3, 2, 0, 7)
    m = rtu.Master(FakeUART([(None, [answer[:4]])]))
    assert m.read_holding(1, 0, 1) is None
    assert m.error == "frame"


def test_bad_crc():
    answer = bytearray(adu(1, 3, 2, 0, 7))
    answer[-1] ^= 0xFF
    m = rtu.Master(FakeUART([(None, [bytes(answer)])]))
    assert m.read_holding(1, 0, 1) is None
    assert m.error == "crc"


def test_answer_from_the_wrong_slave_is_not_taken():
    m = rtu.Master(FakeUART([(None, [adu(2, 3, 2, 0, 7)])]))
    assert m.read_holding(1, 0, 1) is None
    assert m.error == "frame"


def test_answer_for_the_wrong_function_is_not_taken():
    m = rtu.Master(FakeUART([(None, [adu(1, 4, 2, 0, 7)])]))
    assert m.read_holding(1, 0, 1) is None
    assert m.error == "frame"


def test_wrong_register_count_is_not_taken():
    m = rtu.Master(FakeUART([(None, [adu(1, 3, 4, 0, 7, 0, 8)])]))
    assert m.read_holding(1, 0, 1) is None
    assert m.error == "frame"


def test_garbage_before_the_answer_is_skipped():
    # a transceiver turning around often clocks in a 00H or FFH first
    uart = FakeUART([(None, [b"\x00\xff\x01", adu(1, 3, 2, 0, 42)])])
    assert rtu.Master(uart).read_holding(1, 0, 1) == [42]


def test_echoed_request_is_not_mistaken_for_the_answer():
    uart = FakeUART([(None, [adu(1, 3, 2, 0, 42)])], echo=True)
    assert rtu.Master(uart).read_holding(1, 0, 1) == [42]


def test_write_single_register():
    req = unhex("01 06 00 01 00 03 98 0b")
    m = rtu.Master(FakeUART([(req, [req])]))
    assert m.write_register(1, 1, 3) is True


def test_write_echo_with_other_value_fails():
    m = rtu.Master(FakeUART([(None, [adu(1, 6, 0, 1, 0, 4)])]))
    assert m.write_register(1, 1, 3) is False
    assert m.error == "frame"


def test_de_pin_toggles_around_the_request():
    de = FakePin(0)
    rtu.Master(FakeUART([(None, [adu(1, 3, 2, 0, 1)])]), de=de).read_holding(1, 0)
    assert de.history == [1, 0]


@given(
    slave=st.integers(1, 247),
    values=st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125),
    function=st.sampled_from([3, 4]),
)
def test_any_register_answer_round_trips(slave, values, function):
    pdu = [slave, function, 2 * len(values)]
    for v in values:
        pdu += [v >> 8, v & 0xFF]
    uart = FakeUART([(rtu.build_read(slave, function, 0, len(values)), [adu(*pdu)])])
    assert rtu.Master(uart).read_registers(slave, function, 0, len(values)) == values


@given(st.binary(max_size=64))
def test_random_bytes_only_raise_valueerror(data):
    try:
        rtu.parse_response(data)
    except ValueError as e:
        assert e.code in ERROR_CODES or e.code.startswith("exception:")


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), st.binary(min_size=1, max_size=40)), max_size=12))
def test_master_never_raises_whatever_the_line_says(chunks):
    m = rtu.Master(NoisyUART(chunks))
    if m.read_holding(1, 0, 2) is None:
        assert m.error in ERROR_CODES or m.error.startswith("exception:")


def test_line_junk_is_a_timeout_and_other_bytes_a_frame_error():
    m = rtu.Master(FakeUART([(None, [b"\x00\xff"])]))
    assert m.read_holding(1, 0, 1) is None and m.error == "timeout"
    m = rtu.Master(FakeUART([(None, [b"\x12\x34"])]))
    assert m.read_holding(1, 0, 1) is None and m.error == "frame"
