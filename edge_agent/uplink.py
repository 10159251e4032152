"""`POST /u`: what happens to one uplink, whatever carried it.

The order is DESIGN's, and each step answers with its own code:

1. size: a payload over the limit, or any Block1 option   -> 4.13 + Size1
2. COSE and CBOR parse, uplink fields                    -> 4.00 + diagnostic
3. kid lookup; unknown: registry refreshed at once (rate-limited per kid,
   waiting up to 2 s)                                     -> 4.01
4. signature (Sign1) or MAC (Mac0)                        -> 4.01
5. replay: a seq already stored gets the very 2.04 it got the first time;
   an unseen seq less than `replay_window` below the highest is taken; an
   older one is a replay (4.01, as OSCORE answers replays, RFC 8613 §7.4)
6. durable store (group commit, synchronous=FULL)         -> 5.03 + Max-Age
7. 2.04: {1: seq, 2: gateway time, ? 3: commands}

The transport (our CoAP endpoint, or aiocoap in the benchmark's baseline)
only maps a raised coap.ResponseError to its response.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kapok.protocols import coap, coap_numbers, cose, messages

from .commands import CommandBook, SafetyRules, local_report
from .metrics import Metrics
from .models import CARRIED, UplinkRecord
from .registry import RegistrySync
from .replay import NEW, SEEN
from .store import Store, StoreError, StoreFull

log = logging.getLogger(__name__)

_KID = 4
_SIGN1 = cose.TAG_SIGN1
_MAC0 = cose.TAG_MAC0


class UplinkService:
    def __init__(
        self,
        *,
        store: Store,
        registry: RegistrySync,
        book: CommandBook,
        safety: SafetyRules,
        metrics: Metrics,
        max_payload: int = 1024,
        replay_window: int = 1024,
        max_in_flight: int = 20_000,
        full_max_age: int = 60,
        overload_max_age: int = 5,
    ):
        self.store = store
        self.registry = registry
        self.book = book
        self.safety = safety
        self.metrics = metrics
        self.max_payload = max_payload
        self.replay_window = replay_window
        self.max_in_flight = max_in_flight
        self.full_max_age = full_max_age
        self.overload_max_age = overload_max_age
        self._in_flight: dict[tuple[str, int], asyncio.Future] = {}
        self.on_stored = None  # callable(record, new local commands) after a commit

    def _fail(self, result: str, error: coap.ResponseError) -> coap.ResponseError:
        self.metrics.uplink[result].inc()
        return error

    async def handle(
        self, body: bytes, content_format: int | None, block1: bool, peer: str | None
    ) -> bytes:
        """The 2.04 body for an uplink, or a coap.ResponseError to answer."""
        # 1. size
        if block1 or len(body) > self.max_payload:
            why = "Block1 is not taken" if block1 else f"payload of {len(body)} bytes"
            raise self._fail(
                "too_large",
                coap.RequestEntityTooLarge(
                    f"{why}: uplinks are single datagrams of at most {self.max_payload} bytes",
                    size1=self.max_payload,
                ),
            )
        # 2. parse
        if content_format not in (None, coap_numbers.CF_COSE_SIGN1, coap_numbers.CF_COSE_MAC0):
            raise self._fail(
                "bad_request",
                coap.UnsupportedContentFormat(
                    "content-format must be 18 (cose-sign1) or 17 (cose-mac0)"
                ),
            )
        try:
            parsed = cose.parse(body)  # parsed once: the verify below takes it
        except cose.CoseError as e:
            raise self._fail("bad_request", coap.BadRequest(f"COSE: {e}")) from None
        tag, _, protected, unprotected, payload, _ = parsed
        if content_format is not None and content_format != tag:
            raise self._fail(
                "bad_request",
                coap.BadRequest(f"content-format {content_format} but the COSE tag is {tag}"),
            )
        kid = unprotected.get(_KID, protected.get(_KID))
        if not kid:
            raise self._fail("bad_request", coap.BadRequest("COSE: no kid (the device id)"))
        try:
            device_id = messages.check_device_id(kid.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise self._fail(
                "bad_request", coap.BadRequest("COSE: kid is not a device id ([a-z0-9-]{1,16})")
            ) from None
        if payload is None:
            raise self._fail("bad_request", coap.BadRequest("COSE: detached payload"))
        try:
            uplink = messages.parse_uplink(payload, device_id)
        except ValueError as e:
            raise self._fail("bad_request", coap.BadRequest(f"uplink: {e}")) from None
        # 3. kid
        device = self.registry.current.devices.get(device_id)
        if device is None:
            device = await self.registry.resolve_unknown(device_id)
            if device is None:
                raise self._fail("unknown_kid", coap.Unauthorized(f"unknown kid {device_id}"))
        # 4. signature / MAC
        try:
            if tag == _SIGN1:
                if device.public_key is None:
                    raise cose.CoseError(f"{device_id} signs with COSE_Mac0")
                cose.verify1(parsed, device.public_key)
            else:
                if device.mac_key is None:
                    raise cose.CoseError(f"{device_id} signs with COSE_Sign1")
                cose.verify_mac0(parsed, device.mac_key)
        except cose.CoseError as e:
            raise self._fail("bad_signature", coap.Unauthorized(str(e))) from None
        # 5. replay
        seq = uplink["seq"]
        key = (device_id, seq)
        first = self._in_flight.get(key)
        if first is not None:  # the same seq is being stored right now
            reply = await asyncio.shield(first)
            self.metrics.uplink["duplicate"].inc()
            return reply
        state = self.store.replay_state(device_id, seq)
        if state == SEEN:
            self.metrics.uplink["duplicate"].inc()
            return await self._stored_reply(device_id, seq)
        if state != NEW:
            raise self._fail(
                "replay",
                coap.Unauthorized(
                    f"replay: seq {seq} is more than {self.replay_window} below the highest seen"
                ),
            )
        # 6. store
        future = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            reply = await self._store(device, uplink, body, peer)
        except BaseException as e:
            future.set_exception(e)
            future.exception()  # retrieved: a lone failure is not "never retrieved"
            raise
        else:
            future.set_result(reply)
            return reply
        finally:
            del self._in_flight[key]

    async def _stored_reply(self, device_id: str, seq: int) -> bytes:
        reply = await self.store.stored_reply(device_id, seq)
        if reply is None:
            # the row was pruned after `reply_retention`: ack it again
            reply = messages.build_reply(seq, int(time.time()))
        return reply

    async def _store(self, device, uplink: dict, body: bytes, peer: str | None) -> bytes:
        if self.store.in_flight >= self.max_in_flight:
            raise self._fail(
                "overload",
                coap.ServiceUnavailable("gateway overloaded", max_age=self.overload_max_age),
            )
        now = int(time.time())
        seq = uplink["seq"]
        registry = self.registry.current
        local = (
            self.safety.commands_for(registry, device, uplink["events"], now)
            if uplink["events"]
            else []
        )
        own = [c for c in local if c.device == device.id]
        for c in own:
            c.state, c.carried_seq = CARRIED, seq
        coses, updates, reports = self.book.plan_reply(device.id, seq, now, own)
        reports.extend(local_report(c) for c in local)
        reply = messages.build_reply(seq, now, coses)
        record = UplinkRecord(
            device=device.id,
            seq=seq,
            rx=now,
            cose=body,
            reply=reply,
            addr=peer,
            command_updates=updates,
            new_commands=local,
            reports=reports,
        )
        try:
            inserted = await self.store.commit_uplink(record, alarm=bool(local))
        except StoreFull as e:
            raise self._fail(
                "full", coap.ServiceUnavailable(f"gateway storage full: {e}", self.full_max_age)
            ) from None
        except StoreError as e:
            log.error("uplink not stored", extra={"device": device.id, "seq": seq, "error": str(e)})
            raise self._fail(
                "error", coap.ServiceUnavailable("gateway cannot store now", self.full_max_age)
            ) from None
        if not inserted:  # stored meanwhile by another exchange: its reply
            self.metrics.uplink["duplicate"].inc()
            return await self._stored_reply(device.id, seq)
        self.metrics.uplink["stored"].inc()
        self.book.apply(updates)
        for c in local:
            self.book.add(c)
            self.metrics.local_commands.labels(c.op).inc()
            log.warning(
                "fail-safe command signed",
                extra={"device": c.device, "op": c.op, "event": c.event, "source": device.id},
            )
        if self.on_stored is not None:
            self.on_stored(record, local)
        return reply
