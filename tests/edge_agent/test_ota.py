"""The OTA cache: bundles fetched once from the cloud, served with Block2."""

import asyncio
import hashlib
import os
import subprocess

import aiocoap

from kapok.protocols import coap
from kapok.protocols import coap_numbers as n

from .helpers import RawClient

BUNDLE = os.urandom(5000)  # five 1024-byte blocks


async def aiocoap_get(port: int, path: str):
    context = await aiocoap.Context.create_client_context()
    try:
        request = aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{port}/{path}")
        return await asyncio.wait_for(context.request(request).response, 20)
    finally:
        await context.shutdown()


async def many_downloads(port: int, path: str, count: int):
    return await asyncio.gather(*(aiocoap_get(port, path) for _ in range(count)))


def cached(agent, sha: str) -> bool:
    return (agent.settings.data_dir / "fw" / sha).exists()


def test_a_release_bundle_is_cached_and_served_block_by_block(cloud, agent, tmp_path):
    sha = cloud.add_release(BUNDLE)
    agent.wait_registry(cloud)
    agent.wait_for(lambda: cached(agent, sha), what="the bundle in the cache")
    # aiocoap follows Block2 by itself
    response = asyncio.run(aiocoap_get(agent.port, f"fw/{sha}"))
    assert response.code == aiocoap.CONTENT
    assert response.payload == BUNDLE
    # so does libcoap's client
    out = tmp_path / "bundle.bin"
    proc = subprocess.run(
        [
            "coap-client-notls",
            "-m",
            "get",
            "-B",
            "10",
            "-o",
            str(out),
            f"coap://127.0.0.1:{agent.port}/fw/{sha}",
        ],
        capture_output=True,
        timeout=30,
    )
    assert out.read_bytes() == BUNDLE, proc.stderr
    # several nodes at once, and the cloud was asked once
    responses = asyncio.run(many_downloads(agent.port, f"fw/{sha}", 8))
    assert all(r.payload == BUNDLE for r in responses)
    assert cloud.firmware_calls == 1


def test_block2_details(cloud, agent):
    sha = cloud.add_release(BUNDLE)
    agent.wait_registry(cloud)
    agent.wait_for(lambda: cached(agent, sha), what="the bundle in the cache")
    client = RawClient(agent.port)
    request = coap.Message(n.CON, n.GET, client.next_mid(), b"\x01")
    request.uri_path = f"fw/{sha}"
    request.block2 = (3, False, 4)  # a small-buffer node asks for 256-byte blocks
    response = client.request(request)
    assert response.code == n.CONTENT
    assert response.block2 == (3, True, 4)
    assert response.payload == BUNDLE[768:1024]
    assert response.option(n.ETAG) == bytes.fromhex(sha[:16])
    request = coap.Message(n.CON, n.GET, client.next_mid(), b"\x02")
    request.uri_path = f"fw/{sha}"
    request.block2 = (4, False, 6)  # the last 1024-byte block
    response = client.request(request)
    assert response.block2 == (4, False, 6)
    assert response.payload == BUNDLE[4096:]


def test_unknown_bundles_are_404(cloud, agent):
    client = RawClient(agent.port)
    for name in ("ab" * 32, "not-a-hash", "../queue.sqlite3"):
        request = coap.Message(n.CON, n.GET, client.next_mid(), b"\x01")
        request.uri_path = ["fw", name]
        assert client.request(request).code == n.NOT_FOUND


def test_a_bundle_that_does_not_match_its_release_is_not_cached(cloud, agent):
    sha = cloud.add_release(BUNDLE)
    cloud.bundles[sha] = BUNDLE[:-1] + b"\x00"  # corrupted on the way
    good = cloud.add_release(b"another bundle", version="1.3.0")
    agent.wait_registry(cloud)
    agent.wait_for(lambda: cached(agent, good), what="the good bundle")
    assert not cached(agent, sha)
    assert hashlib.sha256((agent.settings.data_dir / "fw" / good).read_bytes()).hexdigest() == good


def test_the_cache_survives_a_restart_without_the_cloud(cloud, start_agent):
    sha = cloud.add_release(BUNDLE)
    first = start_agent()
    first.wait_registry(cloud)
    first.wait_for(lambda: cached(first, sha), what="the bundle")
    first.stop()
    cloud.down()
    second = start_agent()
    response = asyncio.run(aiocoap_get(second.port, f"fw/{sha}"))
    assert response.payload == BUNDLE
