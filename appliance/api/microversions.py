"""OpenStack API microversions, one negotiation for every service that has them.

A request names a version with `OpenStack-API-Version: <service> X.Y` (several services may
share the header, comma-separated), or a service's legacy header (Nova's
`X-OpenStack-Nova-API-Version`); "latest" means the newest we serve; no header means the
oldest. A version outside the range is a 406, as Nova and Cinder answer. Every answer names
the version it was formatted for, so a client can tell what it got.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from appliance.errors import BadRequest, MonostackError

Version = tuple[int, int]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NotAcceptable(MonostackError):
    status = 406
    title = "Not Acceptable"


def fmt_version(v: Version) -> str:
    return f"{v[0]}.{v[1]}"


@dataclass(frozen=True)
class Microversions:
    service: str            # the name in OpenStack-API-Version ("compute", "volume")
    minimum: Version
    maximum: Version
    legacy_header: str | None = None

    @property
    def request_key(self) -> str:
        return f"mv.{self.service}"

    def parse(self, request: web.Request) -> Version:
        raw = None
        for header in request.headers.getall("OpenStack-API-Version", []):
            for part in header.split(","):
                service, _, value = part.strip().partition(" ")
                if service.lower() == self.service and value.strip():
                    raw = value.strip()
        if raw is None and self.legacy_header:
            raw = request.headers.get(self.legacy_header)
        if not raw:
            return self.minimum
        if raw.lower() == "latest":
            return self.maximum
        try:
            major, minor = (int(x) for x in raw.split("."))
        except ValueError as exc:
            raise BadRequest(f"Invalid API version request: {raw[:40]!r}") from exc
        v = (major, minor)
        if not self.minimum <= v <= self.maximum:
            raise NotAcceptable(f"Version {raw[:40]} is not supported by the API. Minimum is "
                                f"{fmt_version(self.minimum)} and maximum is "
                                f"{fmt_version(self.maximum)}.")
        return v

    def of(self, request: web.Request) -> Version:
        """The version a handler formats its answer for (parsed by `wrap`)."""
        return request.get(self.request_key, self.minimum)

    def wrap(self, handler: Handler) -> Handler:
        """Parse the version before the handler, name it in the answer after."""
        async def wrapper(request: web.Request) -> web.StreamResponse:
            v = self.parse(request)
            request[self.request_key] = v
            response = await handler(request)
            if not response.prepared:
                text = fmt_version(v)
                response.headers["OpenStack-API-Version"] = f"{self.service} {text}"
                if self.legacy_header:
                    response.headers[self.legacy_header] = text
                    response.headers["Vary"] = f"OpenStack-API-Version, {self.legacy_header}"
                else:
                    response.headers["Vary"] = "OpenStack-API-Version"
            return response
        wrapper.__name__ = getattr(handler, "__name__", "handler")
        wrapper.__doc__ = handler.__doc__
        if getattr(handler, "__monostack_public__", False):
            wrapper.__monostack_public__ = True  # type: ignore[attr-defined]
        return wrapper


def at_least(request: web.Request, mv: Microversions, version: Version) -> bool:
    return mv.of(request) >= version


__all__ = ["Microversions", "NotAcceptable", "Version", "at_least", "fmt_version"]
