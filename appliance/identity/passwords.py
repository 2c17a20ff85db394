"""Password hashing with scrypt (memory-hard, in the standard library).

Parameters are stored with each hash, so they can be raised later without breaking logins.
Hashing costs ~16 MiB and tens of milliseconds on purpose: callers run it in a thread.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os

N, R, P = 2**14, 8, 1
MAX_PASSWORD_BYTES = 4096


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, maxmem=64 << 20, dklen=32)
    return "scrypt${}${}${}${}${}".format(
        N, R, P, base64.b64encode(salt).decode(), base64.b64encode(digest).decode()
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest_b64)
    digest = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt_b64), n=int(n), r=int(r), p=int(p),
        maxmem=64 << 20, dklen=len(expected),
    )
    return hmac.compare_digest(digest, expected)
