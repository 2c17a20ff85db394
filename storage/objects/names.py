"""Validation of account, container and object names, and the object hash.

Names never become filesystem paths: an object lives at a path derived from the sha256 of
its (account, container, name), so `../../etc/passwd`, `%2e%2e/`, unicode and 1024-byte
names are all just bytes fed to a hash.  Validation still rejects what Swift rejects —
invalid UTF-8, NUL, names over the limits — so that every stored name can be written to
the sqlite index and JSON metadata and sent back in a listing exactly as given.

sha256 (not md5) for the *identity* hash: an attacker who can choose names must not be able
to make two names collide onto one file.  The stored metadata also records the full name
and reads compare it, so even a collision could not serve another object's bytes.
"""

from __future__ import annotations

import hashlib

from .errors import InvalidName

MAX_OBJECT_NAME_BYTES = 1024
MAX_CONTAINER_NAME_BYTES = 256
MAX_ACCOUNT_NAME_BYTES = 256


def _check(kind: str, value: str | bytes, limit: int, *, slash_ok: bool) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise InvalidName(f"{kind} name is not valid UTF-8: {exc}") from None
    if not isinstance(value, str):
        raise InvalidName(f"{kind} name must be str, not {type(value).__name__}")
    try:
        raw = value.encode("utf-8", errors="strict")  # lone surrogates fail here
    except UnicodeEncodeError as exc:
        raise InvalidName(f"{kind} name is not valid UTF-8: {exc}") from None
    if not raw:
        raise InvalidName(f"{kind} name is empty")
    if len(raw) > limit:
        raise InvalidName(f"{kind} name is {len(raw)} bytes, longer than {limit}")
    if "\x00" in value:
        raise InvalidName(f"{kind} name contains a NUL byte")
    if not slash_ok and "/" in value:
        raise InvalidName(f"{kind} name contains '/'")
    return value


def check_account(account: str | bytes) -> str:
    return _check("account", account, MAX_ACCOUNT_NAME_BYTES, slash_ok=False)


def check_container(container: str | bytes) -> str:
    return _check("container", container, MAX_CONTAINER_NAME_BYTES, slash_ok=False)


def check_object(name: str | bytes) -> str:
    return _check("object", name, MAX_OBJECT_NAME_BYTES, slash_ok=True)


def object_hash(account: str, container: str, name: str) -> str:
    """Hex sha256 of the NUL-joined path (NUL cannot occur in a name, so it is unambiguous)."""
    key = "\x00".join((account, container, name)).encode("utf-8")
    return hashlib.sha256(key).hexdigest()
