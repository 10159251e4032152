"""The forwarder: stored uplinks -> `POST /api/v1/ingest`, exactly once.

- A batch (16 random bytes of id and its rows) is written to the store
  BEFORE it is sent; after a crash or a lost answer the same rows go again
  under the same id, and the cloud answers as it did the first time.
- The cloud's answer is read item by item: accepted and duplicate rows are
  done (their bytes dropped, seq and reply kept); rejected ones move to the
  `rejects` table with the cloud's reason, for the operator. Nothing is
  retried forever, nothing vanishes.
- Network errors, 5xx, 429: exponential backoff with full jitter. 401/403:
  logged as an error on every attempt, retried at the backoff cap. 413: the
  batch is split. Any other 4xx: logged and retried at the backoff cap (a
  cloud bug must not cost readings).
- A backlog (weeks of outage) drains oldest-first, alternating with batches
  of the newest readings, so today's alarms reach the cloud while last
  week's meter readings catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from kapok.protocols import messages

from .backoff import Backoff
from .cloud import Cloud, CloudAuthError, CloudError, CloudRefused
from .metrics import Metrics
from .store import Store

log = logging.getLogger(__name__)


class Forwarder:
    def __init__(
        self,
        cloud: Cloud,
        store: Store,
        metrics: Metrics,
        *,
        batch_size: int = 256,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
    ):
        self.cloud = cloud
        self.store = store
        self.metrics = metrics
        self.batch_size = batch_size
        self.backoff = Backoff(backoff_base, backoff_cap)
        self.backoff_cap = backoff_cap
        self.wake = asyncio.Event()
        self.batches_sent = 0

    async def run(self) -> None:
        for batch in await self.store.open_batches():
            log.info("resending a batch left open", extra={"rows": len(batch[2])})
            await self._send(*batch)
        newest = True
        while True:
            self.wake.clear()
            batch = await self.store.new_batch(newest=newest, limit=self.batch_size)
            if batch is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5.0):
                        await self.wake.wait()
                continue
            # only a backlog larger than one batch makes the two orders differ
            newest = not newest
            await self._send(*batch)

    async def _send(self, batch_pk: int, batch_id: bytes, rows: list) -> None:
        body = messages.build_batch(batch_id, [(rx, cose_bytes) for _, rx, cose_bytes in rows])
        while True:
            try:
                raw = await self.cloud.ingest(body)
                reply = messages.parse_batch_reply(raw)
            except CloudAuthError as e:
                log.error("ingest: the cloud refused the gateway token", extra={"error": str(e)})
                await asyncio.sleep(self.backoff_cap)
                continue
            except CloudRefused as e:
                if e.status == 413 and len(rows) > 1:
                    log.warning("ingest: batch too large; splitting", extra={"rows": len(rows)})
                    self.batch_size = max(1, len(rows) // 2)
                    await self.store.unassign_batch(batch_pk)
                    return
                log.error("ingest: the cloud refused the batch", extra={"error": str(e)})
                await asyncio.sleep(self.backoff_cap)
                continue
            except CloudError as e:
                level = logging.WARNING if self.backoff.failures == 0 else logging.DEBUG
                delay = self.backoff.next_delay()
                log.log(
                    level,
                    "ingest: cloud unavailable",
                    extra={"error": str(e), "retry_in": round(delay, 1)},
                )
                await asyncio.sleep(delay)
                continue
            except ValueError as e:  # the reply is not a batch reply
                log.error("ingest: unreadable reply", extra={"error": str(e)})
                await asyncio.sleep(self.backoff.next_delay())
                continue
            break
        self.backoff.reset()
        reasons = {}
        for index, reason in reply["rejects"]:
            if index < len(rows):
                reasons[index] = reason
            else:
                log.error("ingest: reject for an index not in the batch", extra={"index": index})
        if reply["accepted"] + reply["duplicates"] + len(reasons) != len(rows):
            log.warning(
                "ingest: counts do not add up to the batch size",
                extra={"rows": len(rows), **reply},
            )
        results = [(row_id, reasons.get(i)) for i, (row_id, _, _) in enumerate(rows)]
        await self.store.finish_batch(batch_pk, results)
        self.batches_sent += 1
        now = time.time()
        for _row, rx, _cose in rows:
            self.metrics.forward_latency.observe(max(0.0, now - rx))
        self.metrics.forwarded.labels("accepted").inc(reply["accepted"])
        self.metrics.forwarded.labels("duplicate").inc(reply["duplicates"])
        if reasons:
            self.metrics.forwarded.labels("rejected").inc(len(reasons))
            for i, reason in reasons.items():
                log.error(
                    "ingest: the cloud rejected a reading; kept in rejects",
                    extra={"row": rows[i][0], "reason": reason},
                )
