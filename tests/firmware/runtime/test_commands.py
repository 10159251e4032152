"""Signed commands: each refusal with its own code and nothing run; the
allowed ones run once, their results queued for the next uplink; and the
`POST /c` server of always-on nodes."""

import asyncio

import pytest
from runtime.clock import Clock
from runtime.commands import CommandError, Commands, CommandServer
from runtime.identity import Identity
from runtime.outbox import Outbox
from runtime.seq import CommandIds, SeqCounter
from runtime.store import Store

from kapok.protocols import cbor, coap, cose, messages
from kapok.protocols import coap_numbers as n
from tests.firmware.runtime.conftest import (
    CLOUD_SEED,
    DEVICE,
    FW_SEED,
    GW_ID,
    GW_SEED,
    SEED,
    make_config,
)
from tests.firmware.runtime.fakes import T0, FakeClock


def command(cmd_id, op="valve.close", args=None, *, device=DEVICE, **signer):
    """A command signed by the cloud key (or `seed`/`kid`), valid an hour."""
    not_after = signer.get("not_after", T0 + 3600)
    seed = signer.get("seed", CLOUD_SEED)
    kid = signer.get("kid", "cloud")
    payload = messages.build_command(cmd_id, device, op, args or {}, not_after)
    return cose.sign1(payload, seed, kid.encode())


class Rig:
    def __init__(self, path, keys, synced=True):
        self.path = path
        self.ms = FakeClock()
        self.store = Store(str(path))
        self.clock = Clock(self.ms)
        if synced:
            self.clock.sync(T0)
        seq = SeqCounter(self.store)
        self.outbox = Outbox(self.store, Identity(DEVICE, seed=SEED).seal, seq, self.clock, self.ms)
        auths = make_config(keys)["authorities"]
        self.commands = Commands(DEVICE, auths, CommandIds(self.store), self.clock, self.outbox)
        self.ran = []
        for op in ("valve.close", "valve.open", "siren.on", "interval.set", "thresholds.set"):
            self.commands.register(op, self._handler(op))

    def _handler(self, op):
        def handler(args):
            self.ran.append((op, args))

        return handler

    def run(self, msg):
        return asyncio.run(self.commands.run(msg))

    def results(self, pub):
        out = []
        while self.outbox.busy():
            seq, msg = self.outbox.message()
            out += messages.parse_uplink(cose.verify1(msg, pub), DEVICE)["results"]
            self.outbox.acked(seq)
        return out


@pytest.fixture
def rig(tmp_path, keys):
    return Rig(tmp_path, keys)


def test_a_good_command_runs_once_and_reports_ok(rig, keys):
    assert rig.run(command(1)) == (1, messages.OK, None)
    assert rig.ran == [("valve.close", {})]
    assert rig.run(command(1)) is None  # the same delivery again: ignored
    assert rig.ran == [("valve.close", {})]
    assert rig.results(keys["node"]) == [(1, 0, None)]


@pytest.mark.parametrize(
    ("msg", "code"),
    [
        (command(5, seed=bytes(32)), messages.E_SIGNATURE),  # wrong key for "cloud"
        (command(5, kid="mallory"), messages.E_SIGNATURE),  # unknown authority
        (command(5, device="gm-other"), messages.E_DEVICE),
        (command(5, not_after=T0 - 1), messages.E_EXPIRED),
        (command(5, "valve.open", seed=GW_SEED, kid=GW_ID), messages.E_AUTHORITY),
        (command(5, "valve.close", seed=FW_SEED, kid="firmware"), messages.E_AUTHORITY),
        (command(5, "reboot"), messages.E_UNSUPPORTED),  # no handler here
    ],
    ids=["forged", "unknown-kid", "other-device", "expired", "gateway-open", "fw-key", "no-hw"],
)
def test_refusals_have_distinct_codes_and_run_nothing(rig, keys, msg, code):
    cmd_id, got, detail = rig.run(msg)
    assert (cmd_id, got) == (5, code) and detail
    assert rig.ran == []
    assert rig.results(keys["node"]) == [(5, code, detail)]


def test_replay_of_an_older_command_is_refused(rig, keys):
    rig.run(command(7))
    assert rig.run(command(6))[1] == messages.E_REPLAY
    assert rig.ran == [("valve.close", {})]
    # ids are per authority: the gateway's counter is its own
    assert rig.run(command(1, seed=GW_SEED, kid=GW_ID))[1] == messages.OK


def test_gateway_key_may_sign_failsafe_ops(rig):
    assert rig.run(command(1, "siren.on", seed=GW_SEED, kid=GW_ID))[1] == messages.OK
    assert rig.run(command(2, "valve.close", seed=GW_SEED, kid=GW_ID))[1] == messages.OK
    assert [op for op, _ in rig.ran] == ["siren.on", "valve.close"]


def test_unknown_op_and_bad_args(rig):
    payload = cbor.dumps({1: 3, 2: DEVICE, 3: "self.destruct", 4: {}, 5: T0 + 60})
    assert rig.run(cose.sign1(payload, CLOUD_SEED, b"cloud"))[1] == messages.E_UNKNOWN_OP
    bad = cbor.dumps({1: 4, 2: DEVICE, 3: "interval.set", 4: {"s": 0}, 5: T0 + 60})
    assert rig.run(cose.sign1(bad, CLOUD_SEED, b"cloud"))[1] == messages.E_ARGS
    assert rig.ran == []


def test_malformed_cose_is_a_signature_refusal_with_no_id(rig):
    assert rig.run(b"\xd2\x84") == (None, messages.E_SIGNATURE, "not a COSE_Sign1")
    assert len(rig.outbox) == 0  # nothing to report it against


def test_expiry_needs_a_clock(tmp_path, keys):
    r = Rig(tmp_path, keys, synced=False)
    assert r.run(command(1))[1:] == (messages.E_EXPIRED, "clock not set")


def test_cmd_id_is_stored_before_the_handler_runs(tmp_path, keys):
    r = Rig(tmp_path, keys)

    def crash(args):
        raise KeyboardInterrupt  # the node dies mid-command (not an Exception)

    r.commands.register("valve.close", crash)
    with pytest.raises(KeyboardInterrupt):
        r.run(command(9))
    again = Rig(tmp_path, keys)  # after the reboot the command does not run again
    assert again.run(command(9)) is None
    assert again.ran == []


def test_handler_outcomes(rig, keys):
    def fails(args):
        raise OSError("motor stalled")

    def refuses(args):
        raise CommandError(messages.E_UNSUPPORTED, "no valve fitted")

    async def slow(args):
        await asyncio.sleep(0)
        return "opened after 3 s"

    rig.commands.register("valve.close", fails)
    rig.commands.register("siren.on", refuses)
    rig.commands.register("valve.open", slow)
    assert rig.run(command(1)) == (1, messages.E_FAILED, "motor stalled")
    assert rig.run(command(2, "siren.on")) == (2, messages.E_UNSUPPORTED, "no valve fitted")
    assert rig.run(command(3, "valve.open")) == (3, messages.OK, "opened after 3 s")


def test_register_refuses_unknown_ops(rig):
    with pytest.raises(ValueError):
        rig.commands.register("fly", lambda a: None)


# ------------------------------------------------------------- POST /c


def request(payload, path="c", code=n.POST, mid=0x2222, cf=n.CF_COSE_SIGN1):
    m = coap.Message(n.CON, code, mid, b"\x0a\x0b", payload=payload)
    m.uri_path = path
    if cf is not None:
        m.add_option(n.CONTENT_FORMAT, cf)
    return m.encode()


def serve(server, data, peer=("10.0.0.1", 5683)):
    out = asyncio.run(server.handle(data, peer, 0))
    return coap.Message.decode(out) if out is not None else None


def test_command_server_runs_and_answers(rig, keys):
    server = CommandServer(rig.commands)
    resp = serve(server, request(command(11, "siren.on")))
    assert (resp.mtype, resp.code, resp.mid, resp.token) == (n.ACK, n.CHANGED, 0x2222, b"\x0a\x0b")
    assert resp.content_format == n.CF_CBOR
    assert cbor.loads(resp.payload) == {1: 11, 2: messages.OK}
    assert rig.ran == [("siren.on", {})]
    # a retransmission of the request: the same answer, not run again
    again = serve(server, request(command(11, "siren.on")))
    assert again.encode() == resp.encode() and len(rig.ran) == 1
    # the same command in a new request: answered as replayed
    dup = serve(server, request(command(11, "siren.on"), mid=0x2223))
    assert cbor.loads(dup.payload) == {1: 11, 2: messages.E_REPLAY}
    assert rig.results(keys["node"]) == [(11, 0, None)]  # reported once


def test_command_server_refusals(rig):
    server = CommandServer(rig.commands)
    assert serve(server, request(b"not cose", mid=1)).code == n.BAD_REQUEST
    forged = command(12, seed=bytes(32))
    assert serve(server, request(forged, mid=2)).code == n.UNAUTHORIZED
    assert serve(server, request(command(13), path="x", mid=3)).code == n.NOT_FOUND
    assert serve(server, request(command(14), code=n.GET, mid=4)).code == n.METHOD_NOT_ALLOWED
    assert serve(server, request(command(15), cf=n.CF_CBOR, mid=5)).code == (
        n.UNSUPPORTED_CONTENT_FORMAT
    )
    expired = serve(server, request(command(16, not_after=T0 - 5), mid=6))
    assert cbor.loads(expired.payload) == {1: 16, 2: messages.E_EXPIRED}
    assert rig.ran == []
    # forged requests from the network leave nothing in the outbox
    assert len(rig.outbox) == 1  # only the expiry result
    # garbage: a malformed CON gets a Reset, anything else silence
    assert serve(server, bytes([0x48, 0x02, 0, 9])).mtype == n.RST
    assert serve(server, b"\xff") is None
