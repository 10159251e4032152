"""Photos people upload (work-order notes): the kinds a phone's browser
sends and every browser shows, told apart by their first bytes, never by
what the upload claims alone."""

from .errors import Invalid, PayloadTooLarge, UnsupportedMediaType

TYPES = ("image/jpeg", "image/png", "image/webp")


def sniff(data: bytes) -> str | None:
    """The image type the bytes are, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check(data: bytes, *, declared: str | None, limit: int) -> str:
    """The photo's type, if it is a photo of an accepted type within the
    size limit and says what it is; else the error to answer."""
    if not data:
        raise Invalid("the photo is empty")
    if len(data) > limit:
        raise PayloadTooLarge(f"a photo may be at most {limit} bytes")
    declared = (declared or "").split(";")[0].strip().lower()
    if declared == "image/jpg":
        declared = "image/jpeg"
    found = sniff(data)
    if found is None:
        raise UnsupportedMediaType(f"not a photo: send one of {', '.join(TYPES)}")
    if declared and declared != "application/octet-stream" and declared != found:
        raise UnsupportedMediaType(f"the upload says {declared} but is {found}")
    return found
