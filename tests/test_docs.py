"""The annotated hex dumps in docs/protocol.md are what the code produces."""

import re
from pathlib import Path

from kapok.protocols import coap, coap_numbers, cose, ed25519, messages, senml

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
HEX = re.compile(r"^[0-9a-f]+$")


def dumps_in_section_8():
    section = DOC.read_text(encoding="utf-8").split("## 8.", 1)[1]
    blocks = re.findall(r"```\n(.*?)```", section, flags=re.S)
    dumps = []
    for block in blocks:
        data = bytearray()
        for line in block.splitlines():
            first = line.strip().split("  ", 1)[0]
            tokens = first.split()
            if tokens and all(HEX.match(t) and len(t) % 2 == 0 for t in tokens):
                data += bytes.fromhex("".join(tokens))
        dumps.append(bytes(data))
    return dumps


def test_uplink_and_reply_dumps_match_the_code():
    payload = messages.build_uplink(
        1042, 1767225600, compact=senml.compact(1, [12345.677734375, 3.299999952316284, -100])
    )
    request = coap.Message(coap_numbers.CON, coap_numbers.POST, 0x7D34, b"\x5a\x01")
    request.add_option(coap_numbers.URI_PATH, "u")
    request.add_option(coap_numbers.CONTENT_FORMAT, coap_numbers.CF_COSE_SIGN1)
    request.payload = cose.sign1(payload, SEED, b"gm-0001a3")
    reply = coap.ack_for(
        request,
        coap_numbers.CHANGED,
        messages.build_reply(1042, 1767225603),
        options=[(coap_numbers.CONTENT_FORMAT, bytes([coap_numbers.CF_CBOR]))],
    )
    uplink_dump, reply_dump = dumps_in_section_8()
    assert uplink_dump == request.encode()
    assert len(uplink_dump) == 123
    assert reply_dump == reply.encode()
    assert len(reply_dump) == 20
    # and the public key quoted there verifies the quoted message
    public = ed25519.public_key(SEED)
    assert public.hex() in DOC.read_text(encoding="utf-8")
    assert cose.verify1(coap.Message.decode(uplink_dump).payload, public) == payload
