# The board's half of the hardware tests: runs ON the board, which the
# suite gives this file as /kapok_hwtest.py (Board.put). Everything here
# goes through the node's own runtime (config, store, seq, identity, CoAP
# client) and the board module, as the node uses them; each function prints
# one repr() the host reads back with ast.literal_eval.
#
# asyncio.run() is the last call of a function that uses it: on the
# virtual board code after it does not run (tools/virtualboard/mcu.mjs).

import asyncio
import binascii

import board
from runtime import VERSION, config
from runtime.coap_client import Client
from runtime.seq import SeqCounter
from runtime.store import Store

from protocols import messages
from protocols.coap_numbers import POST


def _store():
    return Store(board.DATA_DIR, board.flash_sync)


def _hex(b):
    return binascii.hexlify(b).decode()


def node_config():
    """The stored config as the node reads it at boot, and its public key."""
    cfg = config.load(_store())
    if cfg is None:
        print(repr(None))
        return
    auths = {}
    for kid in cfg["authorities"]:
        a = cfg["authorities"][kid]
        auths[kid] = [_hex(a[0]), a[1]]
    print(
        repr(
            {
                "id": cfg["id"],
                "kind": cfg["kind"],
                "app": cfg["app"],
                "gateway": list(cfg["gateway"]),
                "authorities": auths,
                "options": cfg["options"],
                "public_key": _hex(config.identity(cfg).public_key()),
                "board": board.NAME,
                "version": VERSION,
            }
        )
    )


def seq_next(n):
    """The next `n` uplink seq numbers, as the node takes them (a block is
    reserved on flash before any of it is used)."""
    counter = SeqCounter(_store())
    print(repr([counter.next() for _ in range(n)]))


def sign(payload_hex):
    """The node's COSE message over the payload."""
    cfg = config.load(_store())
    msg = config.identity(cfg).seal(binascii.unhexlify(payload_hex))
    print(repr(_hex(msg)))


async def _post(host, port):
    cfg = config.load(_store())
    identity = config.identity(cfg)
    if hasattr(board, "connect") and not await board.connect(cfg):
        print(repr({"error": "the network did not come up"}))
        return
    transport = board.Transport()
    await transport.open(0)
    try:
        seq = SeqCounter(_store()).next()
        payload = messages.build_uplink(seq, None, events=[("boot", 0, seq)])
        client = Client(transport, (host, port), board.time_ms, board.random_bytes)
        resp = await client.request(POST, "u", identity.seal(payload), identity.content_format)
        print(repr({"seq": seq, "code": resp.code, "payload": _hex(resp.payload)}))
    finally:
        transport.close()


def post_uplink(host, port):
    """One signed uplink POSTed to coap://host:port/u by the runtime's CoAP
    client; prints the seq, the response code and its payload."""
    asyncio.run(_post(host, port))
