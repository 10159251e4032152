# Kapok wire protocols: CBOR, COSE (Ed25519, HMAC), SenML and CoAP framing.
# Pure code without I/O that runs unchanged on MicroPython and CPython; the
# modules import each other relatively so the folder can be copied onto a
# board as the package `protocols`.
