"""`monostack operator add`: a person who may SSH into the appliance and drive it.

Two halves: a unix account in the operators group (key-only login, its password field `*` so
sshd with `UsePAM no` still accepts the key — `!` would lock it out), whose every session is
forced into the TUI by the shipped sshd snippet; and an appliance user with a role on a
project, whose credentials the TUI asks for. The unix account alone gets nobody anything.
"""
from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from pathlib import Path

from appliance.errors import Conflict, Invalid

OPERATORS_GROUP = "monostack-operators"
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


def ensure_group(name: str = OPERATORS_GROUP) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True)


def add_unix_operator(name: str, public_key: str, *, group: str = OPERATORS_GROUP) -> Path:
    if not NAME_RE.match(name):
        raise Invalid(f"{name!r} is not a valid unix user name")
    if not re.match(r"^(ssh-(ed25519|rsa)|ecdsa-sha2-\S+|sk-\S+) [A-Za-z0-9+/=]+( .*)?$",
                    public_key.strip()):
        raise Invalid("the public key must be one OpenSSH public key line")
    ensure_group(group)
    try:
        pwd.getpwnam(name)
        exists = True
    except KeyError:
        exists = False
    if exists:
        members = grp.getgrnam(group).gr_mem
        if name not in members:
            raise Conflict(f"unix user {name} exists and is not an operator; refusing to change it")
    else:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "--groups", group,
                        "--password", "*", name], check=True)
    user = pwd.getpwnam(name)
    ssh_dir = Path(user.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    existing = keys.read_text() if keys.exists() else ""
    if public_key.strip() not in existing:
        with open(keys, "a") as f:
            f.write(public_key.strip() + "\n")
    for p in (ssh_dir, keys):
        os.chown(p, user.pw_uid, user.pw_gid)
    keys.chmod(0o600)
    return keys
