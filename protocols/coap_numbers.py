# CoAP wire numbers (RFC 7252, RFC 7959 and the CoRE registries) in one
# table, so coap.py, the firmware client, the gateway and the tests never
# spell a number twice.  Codes are `(class << 5) | detail`, i.e. 2.05 is 69.
try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


# Message types (RFC 7252 §3)
CON = const(0)
NON = const(1)
ACK = const(2)
RST = const(3)

# Method codes, class 0 (RFC 7252 §12.1.1; FETCH/PATCH/iPATCH RFC 8132)
EMPTY = const(0)
GET = const(1)
POST = const(2)
PUT = const(3)
DELETE = const(4)
FETCH = const(5)
PATCH = const(6)
IPATCH = const(7)

# Response codes, classes 2, 4, 5 (RFC 7252 §12.1.2, RFC 7959, RFC 8516)
CREATED = const(65)  # 2.01
DELETED = const(66)  # 2.02
VALID = const(67)  # 2.03
CHANGED = const(68)  # 2.04
CONTENT = const(69)  # 2.05
CONTINUE = const(95)  # 2.31
BAD_REQUEST = const(128)  # 4.00
UNAUTHORIZED = const(129)  # 4.01
BAD_OPTION = const(130)  # 4.02
FORBIDDEN = const(131)  # 4.03
NOT_FOUND = const(132)  # 4.04
METHOD_NOT_ALLOWED = const(133)  # 4.05
NOT_ACCEPTABLE = const(134)  # 4.06
REQUEST_ENTITY_INCOMPLETE = const(136)  # 4.08
CONFLICT = const(137)  # 4.09
PRECONDITION_FAILED = const(140)  # 4.12
REQUEST_ENTITY_TOO_LARGE = const(141)  # 4.13
UNSUPPORTED_CONTENT_FORMAT = const(143)  # 4.15
UNPROCESSABLE_ENTITY = const(150)  # 4.22
TOO_MANY_REQUESTS = const(157)  # 4.29
INTERNAL_SERVER_ERROR = const(160)  # 5.00
NOT_IMPLEMENTED = const(161)  # 5.01
BAD_GATEWAY = const(162)  # 5.02
SERVICE_UNAVAILABLE = const(163)  # 5.03
GATEWAY_TIMEOUT = const(164)  # 5.04
PROXYING_NOT_SUPPORTED = const(165)  # 5.05

# Option numbers (RFC 7252 §5.10, RFC 7959, RFC 7641, RFC 7967, RFC 9175)
IF_MATCH = const(1)
URI_HOST = const(3)
ETAG = const(4)
IF_NONE_MATCH = const(5)
OBSERVE = const(6)
URI_PORT = const(7)
LOCATION_PATH = const(8)
OSCORE = const(9)
URI_PATH = const(11)
CONTENT_FORMAT = const(12)
MAX_AGE = const(14)
URI_QUERY = const(15)
HOP_LIMIT = const(16)
ACCEPT = const(17)
LOCATION_QUERY = const(20)
BLOCK2 = const(23)
BLOCK1 = const(27)
SIZE2 = const(28)
PROXY_URI = const(35)
PROXY_SCHEME = const(39)
SIZE1 = const(60)
ECHO = const(252)
NO_RESPONSE = const(258)
REQUEST_TAG = const(292)

# Options that may occur more than once (RFC 7252 §5.10 table, RFC 9175).
# Any other option repeated is treated like an unrecognized one (§5.4.5).
REPEATABLE = (IF_MATCH, ETAG, LOCATION_PATH, URI_PATH, URI_QUERY, LOCATION_QUERY, REQUEST_TAG)

# Content formats used by Kapok (CoRE Parameters registry)
CF_TEXT_PLAIN = const(0)  # text/plain; charset=utf-8
CF_COSE_MAC0 = const(17)  # application/cose; cose-type="cose-mac0"
CF_COSE_SIGN1 = const(18)  # application/cose; cose-type="cose-sign1"
CF_LINK_FORMAT = const(40)
CF_OCTET_STREAM = const(42)
CF_JSON = const(50)
CF_CBOR = const(60)
CF_SENML_JSON = const(110)
CF_SENML_CBOR = const(112)

# Transmission parameters (RFC 7252 §4.8), seconds.  ACK_RANDOM_FACTOR is a
# float, so it cannot be a const(); the derived values (§4.8.2) are given as
# whole numbers and the tests recompute them from the RFC's formulas.
ACK_TIMEOUT = const(2)
ACK_RANDOM_FACTOR = 1.5
MAX_RETRANSMIT = const(4)
NSTART = const(1)
DEFAULT_LEISURE = const(5)
PROBING_RATE = const(1)  # bytes per second
MAX_LATENCY = const(100)
PROCESSING_DELAY = const(2)
MAX_RTT = const(202)
MAX_TRANSMIT_SPAN = const(45)
MAX_TRANSMIT_WAIT = const(93)
EXCHANGE_LIFETIME = const(247)
NON_LIFETIME = const(145)
# The same in milliseconds, the unit the sans-IO timers in coap.py take.
ACK_TIMEOUT_MS = const(2000)
MAX_TRANSMIT_SPAN_MS = const(45000)
MAX_TRANSMIT_WAIT_MS = const(93000)
EXCHANGE_LIFETIME_MS = const(247000)
NON_LIFETIME_MS = const(145000)

DEFAULT_MAX_AGE = const(60)  # Max-Age when the option is absent (§5.10.5)
DEFAULT_PORT = const(5683)
DEFAULT_SECURE_PORT = const(5684)
MAX_SZX = const(6)  # 1024-byte blocks; SZX 7 is reserved on UDP (RFC 7959 §2.2)


def code_str(code):
    """Dotted form of a code, e.g. 68 -> "2.04", as the RFCs write it."""
    return "%d.%02d" % (code >> 5, code & 31)


def is_critical(number):
    # Odd option numbers are critical (RFC 7252 §5.4.6).
    return bool(number & 1)


def is_unsafe(number):
    # Bit 1 set: unsafe to forward by a proxy that does not know the option.
    return bool(number & 2)


def is_no_cache_key(number):
    return (number & 0x1E) == 0x1C
