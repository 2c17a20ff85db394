"""`monostack operator add|list|remove|rotate-key`: people who may SSH into the appliance.

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
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import Conflict, Invalid, NotFound
from storage.atomic import atomic_writer

OPERATORS_GROUP = "monostack-operators"
NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


def ensure_group(name: str = OPERATORS_GROUP) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True)


KEY_RE = re.compile(r"^(ssh-(ed25519|rsa)|ecdsa-sha2-\S+|sk-\S+) [A-Za-z0-9+/=]+( [^\n]*)?$")


@dataclass(frozen=True)
class UnixOperator:
    name: str
    home: Path
    keys: tuple[str, ...]  # key type and comment of each authorized key (never the key itself)


def _check(name: str, public_key: str | None = None) -> None:
    if not NAME_RE.match(name):
        raise Invalid(f"{name!r} is not a valid unix user name")
    if public_key is not None and not KEY_RE.match(public_key.strip()):
        raise Invalid("the public key must be one OpenSSH public key line")


def _can_log_in(user: pwd.struct_passwd) -> bool:
    """A member of the group without a login shell is a service account (the web console's
    `monostack-web` reaches the socket through the group), not an operator: sshd could not
    start the TUI for it."""
    return not user.pw_shell.endswith(("/nologin", "/false")) and user.pw_shell != ""


def _operator_account(name: str, group: str) -> pwd.struct_passwd:
    """The account of an existing operator; refuses any other account (never touch a user
    that `operator add` did not make)."""
    _check(name)
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        raise NotFound(f"no unix user {name}") from None
    try:
        members = grp.getgrnam(group).gr_mem
    except KeyError:
        members = []
    if name not in members:
        raise Conflict(f"unix user {name} is not in {group}; refusing to change it")
    if not _can_log_in(user):
        raise Conflict(f"unix user {name} is a service account (shell {user.pw_shell}), "
                       "not an operator; refusing to change it")
    return user


def _write_owned(path: Path, text: str, user: pwd.struct_passwd) -> Path:
    """Replace `path` (in a directory the user owns) atomically with a 0600 file of theirs;
    root never follows a link the user may have planted there."""
    with atomic_writer(path, 0o600) as f:  # O_EXCL on a fresh random name: no link followed
        os.fchown(f.fileno(), user.pw_uid, user.pw_gid)
        f.write(text.encode())
    return path


def _write_keys(user: pwd.struct_passwd, keys_text: str) -> Path:
    ssh_dir = Path(user.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(ssh_dir, user.pw_uid, user.pw_gid)
    return _write_owned(ssh_dir / "authorized_keys", keys_text, user)


def list_unix_operators(group: str = OPERATORS_GROUP) -> list[UnixOperator]:
    try:
        members = grp.getgrnam(group).gr_mem
    except KeyError:
        return []
    out = []
    for name in sorted(members):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        if not _can_log_in(user):
            continue
        try:
            lines = (Path(user.pw_dir) / ".ssh" / "authorized_keys").read_text().splitlines()
        except OSError:
            lines = []
        keys = tuple(" ".join(part for i, part in enumerate(line.split()) if i != 1)
                     for line in lines if line.strip() and not line.startswith("#"))
        out.append(UnixOperator(name=name, home=Path(user.pw_dir), keys=keys))
    return out


def rotate_unix_key(name: str, public_key: str, *, group: str = OPERATORS_GROUP) -> Path:
    """Replace every authorized key of an operator with one new key."""
    _check(name, public_key)
    user = _operator_account(name, group)
    return _write_keys(user, public_key.strip() + "\n")


def remove_unix_operator(name: str, *, group: str = OPERATORS_GROUP) -> None:
    """End the operator's sessions, then delete the account and its home."""
    user = _operator_account(name, group)
    for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL):
        alive = _processes_of(user.pw_uid)
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        while _processes_of(user.pw_uid) and time.monotonic() < deadline:
            time.sleep(0.05)
    subprocess.run(["userdel", "--remove", name], check=True, capture_output=True)


def _processes_of(uid: int) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if proc.stat().st_uid == uid:
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def add_unix_operator(name: str, public_key: str, *, group: str = OPERATORS_GROUP) -> Path:
    _check(name, public_key)
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
    keys = Path(user.pw_dir) / ".ssh" / "authorized_keys"
    existing = keys.read_text() if keys.exists() else ""
    if public_key.strip() not in existing.splitlines():
        existing += public_key.strip() + "\n"
    return _write_keys(user, existing)


def write_openrc(name: str, text: str, *, group: str = OPERATORS_GROUP) -> Path:
    """The operator's own openrc (no password in it), in their home, theirs only."""
    user = _operator_account(name, group)
    return _write_owned(Path(user.pw_dir) / "openrc", text, user)
