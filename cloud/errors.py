"""The cloud's one error tree. Code below the routes raises these; the app
turns each into its HTTP status with `{"detail": message}`."""


class CloudError(Exception):
    status = 400

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadRequest(CloudError, ValueError):
    status = 400


class Unauthorized(CloudError):
    status = 401

    def __init__(self, detail: str = "not authenticated"):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(CloudError):
    status = 403


class NotFound(CloudError, LookupError):
    """Also what a caller gets for anything outside its communities."""

    status = 404


class Conflict(CloudError):
    status = 409


class PayloadTooLarge(CloudError):
    status = 413


class UnsupportedMediaType(CloudError):
    status = 415


class Invalid(CloudError, ValueError):
    """Well-formed but unacceptable input (the same status as FastAPI's own
    validation errors)."""

    status = 422


class TooManyRequests(CloudError):
    status = 429

    def __init__(self, detail: str, *, retry_after: int):
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))})
        self.retry_after = retry_after


class ServiceUnavailable(CloudError):
    """The database is busy or unreachable: try again later."""

    status = 503

    def __init__(self, detail: str, *, retry_after: int = 5):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
