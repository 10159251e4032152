# The node's signing identity: an Ed25519 seed (COSE_Sign1, Content-Format
# 18) or, on boards too slow to sign, a 32-byte key shared with the gateway
# and cloud (COSE_Mac0, Content-Format 17). The kid is the device id.

from protocols import coap_numbers, cose


class Identity:
    def __init__(self, device_id, seed=None, mac_key=None):
        if (seed is None) == (mac_key is None):
            raise ValueError("an identity is an Ed25519 seed or a MAC key, exactly one")
        key = seed if seed is not None else mac_key
        if not isinstance(key, bytes) or len(key) != 32:
            raise ValueError("identity key must be 32 bytes")
        self.device_id = device_id
        self.kid = device_id.encode()
        self._seed = seed
        self._mac_key = mac_key
        if seed is not None:
            self.content_format = coap_numbers.CF_COSE_SIGN1
        else:
            self.content_format = coap_numbers.CF_COSE_MAC0

    def seal(self, payload):
        """The COSE message carrying `payload`, signed or MACed."""
        if self._seed is not None:
            return cose.sign1(payload, self._seed, self.kid)
        return cose.mac0(payload, self._mac_key, self.kid)

    def public_key(self):
        """The Ed25519 public key (None for a MAC identity); slow on a board."""
        if self._seed is None:
            return None
        from protocols import ed25519

        return ed25519.public_key(self._seed)
