"""The durable queue on its own: group commit, state across reopening,
batches that survive a crash, pruning in chunks."""

import asyncio
import time

from kapok.edge_agent import store as store_module
from kapok.edge_agent.models import UplinkRecord
from kapok.edge_agent.replay import NEW, SEEN, TOO_OLD
from kapok.edge_agent.store import Store


def record(device: str, seq: int) -> UplinkRecord:
    return UplinkRecord(
        device=device, seq=seq, rx=int(time.time()), cose=b"\xd2" * 100, reply=b"\xa2" * 9
    )


async def opened(path, **kwargs) -> Store:
    store = Store(path, max_queue_bytes=10**9, replay_window=16, **kwargs)
    await store.open()
    return store


def test_concurrent_uplinks_share_commits(tmp_path):
    groups = []

    async def main():
        store = await opened(tmp_path)
        store.on_commit = lambda records: groups.append(len(records))
        results = await asyncio.gather(
            *(store.commit_uplink(record(f"d-{i % 20}", i)) for i in range(400))
        )
        await store.close()
        return results

    assert all(asyncio.run(main()))
    assert sum(groups) == 400
    assert len(groups) < 400 / 4, f"{len(groups)} commits for 400 uplinks"


def test_state_survives_reopening(tmp_path):
    async def first():
        store = await opened(tmp_path)
        for seq in (10, 12, 40):
            assert await store.commit_uplink(record("d-1", seq))
        assert not await store.commit_uplink(record("d-1", 12))  # already there
        batch = await store.new_batch(newest=False, limit=2)
        await store.close()  # as if the agent died with the batch in flight
        return batch

    async def second():
        store = await opened(tmp_path)
        verdicts = [store.replay_state("d-1", s) for s in (40, 12, 11, 25, 24, 41)]
        batches = await store.open_batches()
        depth = store.unsent
        await store.close()
        return verdicts, batches, depth

    batch = asyncio.run(first())
    verdicts, batches, depth = asyncio.run(second())
    assert verdicts == [SEEN, TOO_OLD, TOO_OLD, NEW, TOO_OLD, NEW]
    assert depth == 3
    # the batch comes back with the same id and rows, to be sent again as it was
    assert [(b[1], [r[0] for r in b[2]]) for b in batches] == [(batch[1], [r[0] for r in batch[2]])]


def test_pruning_goes_in_chunks_and_frees_pages(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "PRUNE_CHUNK", 7)

    async def main():
        store = await opened(tmp_path)
        await asyncio.gather(*(store.commit_uplink(record("d-1", i)) for i in range(1, 51)))
        while (batch := await store.new_batch(newest=False, limit=16)) is not None:
            await store.finish_batch(batch[0], [(row, None) for row, _, _ in batch[2]])
        assert (store.unsent, store.queue_bytes) == (0, 0)
        pruned = await store.prune(int(time.time()) + 1)
        free = store.free_pages_bytes
        await store.close()
        return pruned, free

    pruned, free = asyncio.run(main())
    assert pruned == 50
    assert free > 0


def test_a_seq_that_falls_below_the_window_on_its_way_to_the_disk(tmp_path):
    # two uplinks of one device in one commit, the newer far ahead: both are
    # stored, the window stays sound and the store keeps working
    async def main():
        store = await opened(tmp_path)
        both = await asyncio.gather(
            store.commit_uplink(record("d-1", 5000)), store.commit_uplink(record("d-1", 10))
        )
        after = await store.commit_uplink(record("d-1", 5001))
        verdicts = [store.replay_state("d-1", s) for s in (5000, 5001, 10)]
        await store.close()
        return both, after, verdicts

    both, after, verdicts = asyncio.run(main())
    assert both == [True, True]
    assert after is True
    assert verdicts == [SEEN, SEEN, TOO_OLD]
