"""The one mapping from libvirt's error codes to our error tree (appliance/errors.py)."""
from __future__ import annotations

import libvirt

from appliance.errors import (
    Conflict,
    HypervisorError,
    Invalid,
    MonostackError,
    NotFound,
    ServiceUnavailable,
)

_NOT_FOUND = {libvirt.VIR_ERR_NO_DOMAIN}
_CONFLICT = {libvirt.VIR_ERR_OPERATION_INVALID}
_UNSUPPORTED = {libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_OPERATION_UNSUPPORTED}
_INVALID = {libvirt.VIR_ERR_XML_ERROR, libvirt.VIR_ERR_XML_DETAIL}
# libvirtd went away (restart, crash): the caller may retry once we have reconnected.
CONNECTION_LOST = {libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_RPC, libvirt.VIR_ERR_NO_CONNECT,
                    libvirt.VIR_ERR_INVALID_CONN}


def translate(err: libvirt.libvirtError, what: str) -> MonostackError:
    """The one mapping from libvirt error codes to our error tree."""
    code = err.get_error_code()
    msg = f"{what}: {err.get_error_message() or err}"
    if code in _NOT_FOUND:
        return NotFound(msg)
    if code in _CONFLICT:
        return Conflict(msg)
    if code in _UNSUPPORTED or code in CONNECTION_LOST:
        return ServiceUnavailable(msg)
    if code in _INVALID:
        return Invalid(msg)
    if code == libvirt.VIR_ERR_OPERATION_FAILED and "already exists" in msg:
        return Conflict(msg)
    return HypervisorError(msg, libvirt_code=code)
