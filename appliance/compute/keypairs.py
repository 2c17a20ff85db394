"""Key pair material: Nova's fingerprint of an OpenSSH public key, and new ed25519 pairs."""
from __future__ import annotations

import base64
import hashlib

from appliance.errors import BadRequest


def fingerprint(public_key: str) -> str:
    """Nova's: MD5 of the key blob, colon-separated hex. BadRequest for what is not an
    OpenSSH public key."""
    parts = public_key.strip().split()
    if len(parts) < 2:
        raise BadRequest("Keypair data is invalid: not an OpenSSH public key")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError as exc:
        raise BadRequest("Keypair data is invalid: bad base64") from exc
    if not parts[0].startswith(("ssh-", "ecdsa-", "sk-")):
        raise BadRequest(f"Keypair data is invalid: unknown key type {parts[0]}")
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def generate_keypair() -> tuple[str, str]:
    """(public OpenSSH line, private key PEM): ed25519, made with `cryptography`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return public, private
