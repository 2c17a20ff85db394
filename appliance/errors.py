"""The one error tree of the appliance.

Every component raises these; `appliance.api.middleware` maps them to HTTP status codes and
OpenStack-shaped bodies in one place, and `appliance.client` maps HTTP answers back to them, so
the TUI and the tests see the same classes the daemon raised.

    MonostackError (500)
    ├── BadRequest (400)
    │   └── Invalid (400)            a value is well-formed but not acceptable
    ├── Unauthorized (401)           no, bad, expired or revoked credentials
    ├── Forbidden (403)              policy refuses the action
    ├── NotFound (404)
    ├── Conflict (409)               state does not allow it now (task running, in use …)
    ├── LengthRequired (411)         a body of unstated length where one is needed (Swift PUT)
    ├── PreconditionFailed (412)     a conditional request's condition does not hold
    ├── PayloadTooLarge (413)
    │   └── QuotaExceeded (413)
    ├── RangeNotSatisfiable (416)
    ├── Unprocessable (422)          the body does not match its declared checksum
    ├── RateLimited (429)
    ├── NoValidHost (500)            the scheduler refused; message says which filter and why
    ├── HypervisorError (500)        libvirt or qemu failed
    ├── ServiceUnavailable (503)     a component is not running
    └── InsufficientStorage (507)    a disk is full
"""
from __future__ import annotations


class MonostackError(Exception):
    status: int = 500
    title: str = "Internal Server Error"

    def __init__(self, message: str = "", **details: object) -> None:
        super().__init__(message or self.title)
        self.message = message or self.title
        self.details = details

    def __str__(self) -> str:
        return self.message


class BadRequest(MonostackError):
    status = 400
    title = "Bad Request"


class Invalid(BadRequest):
    title = "Invalid"


class Unauthorized(MonostackError):
    status = 401
    title = "Unauthorized"


class Forbidden(MonostackError):
    status = 403
    title = "Forbidden"


class NotFound(MonostackError):
    status = 404
    title = "Not Found"


class Conflict(MonostackError):
    status = 409
    title = "Conflict"


class LengthRequired(MonostackError):
    status = 411
    title = "Length Required"


class PreconditionFailed(MonostackError):
    status = 412
    title = "Precondition Failed"


class PayloadTooLarge(MonostackError):
    status = 413
    title = "Request Entity Too Large"


class QuotaExceeded(PayloadTooLarge):
    title = "Quota exceeded"


class RangeNotSatisfiable(MonostackError):
    status = 416
    title = "Requested Range Not Satisfiable"


class Unprocessable(MonostackError):
    status = 422
    title = "Unprocessable Entity"


class RateLimited(MonostackError):
    status = 429
    title = "Too Many Requests"


class NoValidHost(MonostackError):
    status = 500
    title = "No valid host was found"


class HypervisorError(MonostackError):
    status = 500
    title = "Hypervisor error"


class ServiceUnavailable(MonostackError):
    status = 503
    title = "Service Unavailable"


class InsufficientStorage(MonostackError):
    status = 507
    title = "Insufficient Storage"


_BY_STATUS: dict[int, type[MonostackError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    411: LengthRequired,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    416: RangeNotSatisfiable,
    422: Unprocessable,
    429: RateLimited,
    503: ServiceUnavailable,
    507: InsufficientStorage,
}


def error_for_status(status: int, message: str) -> MonostackError:
    """The client's way back from an HTTP answer to the class the daemon raised."""
    return _BY_STATUS.get(status, MonostackError)(message)
