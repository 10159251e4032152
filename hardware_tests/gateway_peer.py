"""A gateway for the app tests, built with Kapok's own protocol code
(kapok.protocols.coap): it answers each Confirmable POST /u with 2.04 and
the reply body, piggybacks the commands a test queues, and can fall
silent (a gateway outage). Every uplink is checked twice: with pycose, an
independent COSE implementation, and with the node's public key."""

from __future__ import annotations

import socket
import threading
import time

from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

from kapok.protocols import coap, messages
from kapok.protocols import coap_numbers as n


def pycose_verify(msg: bytes, public_key: bytes) -> bytes:
    """The payload of a COSE_Sign1 that pycose verifies; ValueError if not."""
    decoded = Sign1Message.decode(msg)
    decoded.key = OKPKey(crv=Ed25519, x=public_key)
    if not decoded.verify_signature():
        raise ValueError("pycose: bad signature")
    return decoded.payload


class GatewayPeer:
    def __init__(self, device: str, public_key: bytes):
        self.device = device
        self.public_key = public_key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.uplinks: list[dict] = []  # each seq once, in arrival order
        self.datagrams: list[tuple[int, bytes]] = []  # (seq, signed payload), every copy
        self.refused: list[str] = []
        self.pending: list[bytes] = []  # signed commands for the next reply
        self.sent: list[bytes] = []  # the commands delivered, in order
        self.silent = False
        self.dropped = 0
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def queue(self, *commands: bytes) -> None:
        with self._lock:
            self.pending.extend(commands)

    def _serve(self):
        while self._running:
            try:
                data, peer = self.sock.recvfrom(2048)
            except OSError:
                continue
            if self.silent:
                self.dropped += 1
                continue
            try:
                req = coap.Message.decode(data)
            except ValueError as e:
                self.refused.append(str(e))
                continue
            if req.mtype != n.CON or req.code != n.POST or req.uri_path != ["u"]:
                continue
            try:
                payload = pycose_verify(req.payload, self.public_key)
                up = messages.parse_uplink(payload, self.device)
            except Exception as e:
                self.refused.append(repr(e))
                self.sock.sendto(coap.ack_for(req, n.UNAUTHORIZED).encode(), peer)
                continue
            with self._lock:
                self.datagrams.append((up["seq"], req.payload))
                commands = []
                if all(u["seq"] != up["seq"] for u in self.uplinks):
                    self.uplinks.append(up)
                    commands, self.pending = self.pending, []
                    self.sent.extend(commands)
            body = messages.build_reply(up["seq"], int(time.time()), commands)
            resp = coap.ack_for(req, n.CHANGED, body, [(n.CONTENT_FORMAT, n.CF_CBOR)])
            self.sock.sendto(resp.encode(), peer)

    def results(self) -> list[tuple]:
        return [r for up in list(self.uplinks) for r in up["results"]]

    def events(self) -> list[tuple]:
        return [e for up in list(self.uplinks) for e in up["events"]]

    def readings(self) -> list[dict]:
        return [r for up in list(self.uplinks) for r in up["readings"]]

    def close(self):
        self._running = False
        self._thread.join()
        self.sock.close()
