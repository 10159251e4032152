"""Pushing commands to always-on nodes: `POST coap://<node>/c` (CON), from
the gateway's own CoAP socket.

A node's address is the registry's `address`, else the source address of
its last uplink. An acknowledged POST makes the command `delivered`; an RST
or an error response makes it `failed` (the detail says which); no answer at
all leaves it open: it is pushed again every `retry_interval` and rides on
the node's next 2.04 anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kapok.protocols import coap
from kapok.protocols import coap_numbers as n

from .commands import CommandBook, status_report
from .endpoint import CoapEndpoint
from .models import DELIVERED, FAILED, OPEN_STATES, Command
from .registry import RegistrySync
from .store import Store

log = logging.getLogger(__name__)


class Pusher:
    def __init__(
        self,
        endpoint: CoapEndpoint,
        registry: RegistrySync,
        store: Store,
        book: CommandBook,
        *,
        ack_timeout: float = 2.0,
        retry_interval: float = 60.0,
        on_report=None,
    ):
        self.endpoint = endpoint
        self.registry = registry
        self.store = store
        self.book = book
        self.ack_timeout = ack_timeout
        self.retry_interval = retry_interval
        self.on_report = on_report  # called when a report was queued
        self._active: dict[int, asyncio.Task] = {}

    def always_on(self, device_id: str) -> bool:
        device = self.registry.current.devices.get(device_id)
        return bool(device and device.always_on)

    def push(self, commands: list[Command]) -> None:
        """Start pushing those of `commands` whose target is always on."""
        loop = asyncio.get_running_loop()
        for c in commands:
            if c.row is None or c.row in self._active or not self.always_on(c.device):
                continue
            task = loop.create_task(self._deliver(c), name=f"push-{c.row}")
            self._active[c.row] = task
            task.add_done_callback(lambda _t, row=c.row: self._active.pop(row, None))

    def address_of(self, device_id: str) -> str | None:
        device = self.registry.current.devices.get(device_id)
        if device is not None and device.address:
            return device.address
        return self.store.addresses.get(device_id)

    async def _deliver(self, command: Command) -> None:
        address = self.address_of(command.device)
        if address is None:
            log.info("no address for an always-on node yet", extra={"device": command.device})
            return
        if command.not_after <= time.time():
            return  # the next uplink's plan fails it as expired
        msg = coap.Message(code=n.POST)
        msg.uri_path = "c"
        msg.content_format = n.CF_COSE_SIGN1
        msg.payload = command.cose
        try:
            answer = await self.endpoint.request(address, msg, ack_timeout=self.ack_timeout)
        except (OSError, ValueError) as e:
            log.warning("push failed to leave", extra={"device": command.device, "error": str(e)})
            return
        if answer is None:
            log.warning(
                "always-on node did not answer POST /c",
                extra={"device": command.device, "address": address},
            )
            return
        if answer.mtype == n.RST:
            state, detail = FAILED, "the node reset the POST /c"
        elif answer.code == 0 or answer.code_class == 2:
            state, detail = DELIVERED, None
        else:
            state = FAILED
            detail = f"the node answered {n.code_str(answer.code)}"
            if answer.payload:
                detail += ": " + answer.payload.decode("utf-8", "replace")[:200]
        if command.state not in OPEN_STATES:
            return  # delivered on a 2.04 meanwhile
        reports = [] if command.local else [status_report(command, state, detail)]
        await self.store.update_command(command, state, reports)
        self.book.apply([(command, state, command.carried_seq)])
        log.info(
            "command pushed",
            extra={"device": command.device, "op": command.op, "state": state, "detail": detail},
        )
        if reports and self.on_report:
            self.on_report()

    def close(self) -> None:
        for task in list(self._active.values()):
            task.cancel()

    async def run(self) -> None:
        """Push again what is still open for always-on nodes."""
        while True:
            await asyncio.sleep(self.retry_interval)
            self.push(self.book.all_open())
