"""The `monostack` command: init, serve, tui, status, tls, backup, restore, doctor, operator,
image-import, support-matrix, client-config, openrc."""
from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlencode

from appliance.config import Config
from appliance.errors import MonostackError
from appliance.operators import OPERATORS_GROUP

DEFAULT_CONFIG = Path("/etc/monostack/monostack.toml")


def _config(args: argparse.Namespace) -> Config:
    path = args.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    return Config.load(Path(path) if path else None)


def _admin_password(args: argparse.Namespace) -> str:
    if args.admin_password:
        return args.admin_password
    env = os.environ.get("MONOSTACK_ADMIN_PASSWORD")
    if env:
        return env
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\n")
        if line:
            return line
        raise SystemExit("monostack init: give the admin password with --admin-password, "
                         "MONOSTACK_ADMIN_PASSWORD or on standard input")
    while True:
        first = getpass.getpass("New admin password: ")
        if first and first == getpass.getpass("Again: "):
            return first
        print("Passwords were empty or did not match; try again.", file=sys.stderr)


async def _init(config: Config, admin: str, password: str, project: str) -> None:
    from appliance.service import Appliance
    appliance = Appliance(config)
    await appliance.startup(listen=False)
    try:
        assert appliance.ctx is not None
        user = await appliance.ctx.identity.bootstrap(admin, password, project)
        proj = appliance.ctx.identity.project_by_name(project)
        await appliance.bootstrap(proj)
        print(f"monostack initialised: admin user {user.name!r} on project {project!r} "
              f"(state in {config.state_dir})")
    finally:
        await appliance.shutdown()


def cmd_init(args: argparse.Namespace) -> int:
    from appliance.logging_setup import setup_logging
    config = _config(args)
    setup_logging(config.log.level if not args.quiet else "WARNING", "text")
    asyncio.run(_init(config, args.admin_user, _admin_password(args), args.admin_project))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from appliance.logging_setup import setup_logging
    from appliance.service import Appliance
    config = _config(args)
    setup_logging(config.log.level, config.log.format)
    asyncio.run(Appliance(config).run())
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    # Over `ssh host cmd` (no -t) the ForceCommand still runs us, with pipes instead of a
    # terminal: say so and exit at once rather than drawing into a pipe or waiting forever.
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("monostack tui: needs an interactive terminal "
              "(over SSH: ssh -t)", file=sys.stderr)
        return 2
    try:
        from tui.app import run_tui
    except ModuleNotFoundError as exc:
        raise SystemExit(f"the TUI is not installed: {exc}")
    from appliance.client_config import tui_socket
    socket_path = None
    if not args.url:
        # An SSH operator runs this as their own unix account: nothing root-only is read.
        socket_path = (Path(args.socket) if args.socket
                       else tui_socket(args.config, daemon_config=DEFAULT_CONFIG))
    return run_tui(url=args.url, socket_path=socket_path)


def cmd_web(args: argparse.Namespace) -> int:
    """The operator console in a browser (off unless started: the installer's --web enables
    it). TLS with the TCP API's certificate; each tab logs in like the TUI. It runs as an
    unprivileged user that cannot read the daemon's config: given --socket, --cert and --key
    it reads no config at all."""
    try:
        from tui.web import run_web
    except ModuleNotFoundError as exc:
        raise SystemExit(f"the web console is not installed: {exc}")
    config = None
    if not (args.socket and args.cert and args.key):
        try:
            config = _config(args)
        except PermissionError as exc:
            raise SystemExit(f"monostack web: {exc}; give --socket, --cert and --key")
    cert = Path(args.cert) if args.cert else config.api.tls_cert if config else None
    key = Path(args.key) if args.key else config.api.tls_key if config else None
    socket_path = Path(args.socket) if args.socket else config.api.socket if config else None
    try:
        return run_web(listen=args.listen, socket_path=socket_path,
                       cert=cert, key=key, max_sessions=args.max_sessions)
    except ValueError as exc:
        raise SystemExit(f"monostack web: {exc}")


def _cafile(config: Config, url: str | None, given: str | None) -> str | None:
    """The CA to trust for an https URL: --cacert, OS_CACERT, or our own CA beside the cert."""
    if given:
        return given
    if not url or not url.startswith("https:"):
        return None
    if os.environ.get("OS_CACERT"):
        return os.environ["OS_CACERT"]
    if config.api.tls_cert:
        from appliance.tls import ca_path_for
        return str(ca_path_for(config.api.tls_cert))
    return None


def _ca_path(config: Config) -> Path | None:
    if not config.api.tls_cert:
        return None
    from appliance.tls import ca_path_for
    return ca_path_for(config.api.tls_cert)


#: `monostack status` exit code when the daemon does not answer (systemctl's "not running")
STATUS_DOWN = 3


def cmd_status(args: argparse.Namespace) -> int:
    from appliance.status import collect, daemon_health, render
    config = _config(args)
    cafile = _cafile(config, args.url, args.cacert)
    if args.daemon:
        health, error = asyncio.run(daemon_health(config, url=args.url, cafile=cafile))
        print(json.dumps(health) if health is not None else f"daemon: not answering ({error})")
        return 0 if health is not None else STATUS_DOWN
    password = os.environ.get("MONOSTACK_ADMIN_PASSWORD")
    if not password:
        try:
            password = ADMIN_PASSWORD_FILE.read_text().strip()
        except OSError:
            password = None
    report = asyncio.run(collect(config, url=args.url, cafile=cafile, admin_password=password))
    if args.json:
        print(json.dumps({"daemon": report.daemon, "daemon_error": report.daemon_error,
                          "counts": report.counts,
                          "checks": [vars(c) for c in report.checks],
                          "healthy": report.healthy}, indent=2))
    else:
        print(render(config, report, ca_path=_ca_path(config)))
    if report.daemon is None:
        return STATUS_DOWN
    return 0 if report.healthy else 1


def cmd_tls_init(args: argparse.Namespace) -> int:
    from appliance.tls import DEFAULT_DIR, ensure_tls
    config = _config(args)
    directory = Path(args.dir) if args.dir else (
        config.api.tls_cert.parent if config.api.tls_cert else DEFAULT_DIR)
    result = ensure_tls(directory, args.name or [])
    names = ", ".join([*result.dns_names, *map(str, result.ip_addresses)])
    if result.ca_created:
        print(f"created a private CA: {result.files.ca_cert}")
    if result.issued_because:
        print(f"issued {result.files.server_cert} ({result.issued_because}) for {names}")
    else:
        print(f"{result.files.server_cert} is current ({names}); nothing changed")
    print(f"clients: export OS_CACERT={result.files.ca_cert}")
    return 0


def cmd_tls_ca_path(args: argparse.Namespace) -> int:
    path = _ca_path(_config(args))
    if path is None:
        print("monostack tls: the TCP API has no TLS ([api] tls_cert is not set)", file=sys.stderr)
        return 1
    print(path)
    return 0


def cmd_support_matrix(args: argparse.Namespace) -> int:
    from appliance.compute.support_matrix import extract_block, readme_block
    block = readme_block()
    if not args.update_readme:
        print(block)
        return 0
    readme = Path(args.update_readme)
    text = readme.read_text()
    old = extract_block(text)
    if old is None:
        raise SystemExit(f"{readme} has no support-matrix block to replace")
    if old != block:
        readme.write_text(text.replace(old, block))
        print(f"updated the support matrix in {readme}")
    return 0


ADMIN_PASSWORD_FILE = Path("/etc/monostack/admin-password")


async def admin_client(config: Config, url: str | None = None):
    """Log in as the appliance admin for host-side commands (backup, image import …)."""
    from appliance.client import MonostackClient
    password = _stored_admin_password()
    client = MonostackClient(url, socket_path=None if url else config.api.socket)
    await client.login(os.environ.get("MONOSTACK_ADMIN_USER", "admin"), password,
                       os.environ.get("MONOSTACK_ADMIN_PROJECT", "admin"))
    return client


async def _backup(config: Config) -> dict:
    client = await admin_client(config)
    async with client:
        return (await client.post("/monostack/backup", {}))["backup"]


def cmd_backup(args: argparse.Namespace) -> int:
    """The daemon writes into its backup_dir; with a PATH the file moves there (host-side)."""
    from appliance.state.backup import move_backup
    meta = asyncio.run(_backup(_config(args)))
    if args.path:
        move_backup(Path(meta["path"]), Path(args.path))
        meta["path"] = str(Path(args.path).resolve())
    counts = ", ".join(f"{v} {k}" for k, v in sorted(meta["counts"].items()))
    print(f"backup written to {meta['path']} (seq {meta['seq']}: {counts})")
    return 0


async def _audit(config: Config, query: dict[str, str]) -> list[dict]:
    from urllib.parse import urlencode
    client = await admin_client(config)
    async with client:
        return (await client.get("/monostack/audit?" + urlencode(query)))["events"]


def cmd_audit(args: argparse.Namespace) -> int:
    """The audit trail, newest first: who did what, when, from where, and how it ended."""
    query = {k: v for k, v in (("since", args.since), ("user_id", args.user),
                               ("project_id", args.project), ("outcome", args.outcome),
                               ("limit", str(args.limit))) if v}
    events = asyncio.run(_audit(_config(args), query))
    if args.json:
        print(json.dumps(events, indent=2))
        return 0
    for ev in events:
        who = ev["initiator"].get("name") or ev["initiator"]["id"]
        print(f"{ev['eventTime'][:19]}  {ev['outcome']:<7} {ev['reason']['reasonCode']}  "
              f"{who:<16} {ev['initiator']['host']['address']:<15} {ev['method']:<6} "
              f"{ev['requestPath']}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from appliance.service import StateLock
    from appliance.state.backup import restore_backup
    config = _config(args)
    lock = StateLock(config.state_dir)
    lock.acquire()  # refuses while a daemon owns the state dir
    try:
        meta = restore_backup(Path(args.path), config.state_dir)
    finally:
        lock.release()
    print(f"restored state from {args.path} (seq {meta['seq']}) into {config.state_dir}")
    return 0


def cmd_network_teardown(args: argparse.Namespace) -> int:
    """Remove the data-plane namespace (bridges, taps, DHCP sockets, rules) — daemon stopped."""
    from appliance.network.netlink import DataPlane
    from appliance.service import StateLock
    config = _config(args)
    lock = StateLock(config.state_dir)
    lock.acquire()  # refuses while a daemon owns the state dir (and so the namespace)
    try:
        dp = DataPlane(config.network.namespace)

        async def teardown() -> bool:
            existed = await dp.namespace_exists()
            await dp.delete_namespace()
            return existed

        existed = asyncio.run(teardown())
    finally:
        lock.release()
    print(f"network namespace {config.network.namespace} "
          f"{'removed' if existed else 'did not exist'}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from appliance.doctor import run_checks
    ok = True
    for check in run_checks(_config(args)):
        mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[check.level]
        print(f"[{mark}] {check.name}: {check.detail}")
        if check.fix:
            print(f"       fix: {check.fix}")
        ok = ok and check.level != "fail"
    return 0 if ok else 1


async def _operator_add(config: Config, name: str, password: str, project: str, role: str) -> str:
    client = await admin_client(config)
    async with client:
        projects = (await client.get(f"/identity/v3/projects?name={project}"))["projects"]
        if not projects:
            raise SystemExit(f"no project named {project!r}")
        users = (await client.get(f"/identity/v3/users?name={name}"))["users"]
        if users:
            user = users[0]
        else:
            user = (await client.post("/identity/v3/users", {"user": {
                "name": name, "password": password,
                "default_project_id": projects[0]["id"]}}))["user"]
        roles = (await client.get(f"/identity/v3/roles?name={role}"))["roles"]
        if not roles:
            raise SystemExit(f"no role named {role!r}")
        await client.put(f"/identity/v3/projects/{projects[0]['id']}/users/{user['id']}"
                         f"/roles/{roles[0]['id']}")
        return user["id"]


def _key_arg(key: str) -> str:
    return Path(key).read_text() if os.path.exists(key) else key


def cmd_operator_add(args: argparse.Namespace) -> int:
    from appliance.client_config import ClientConfig, openrc
    from appliance.operators import add_unix_operator, write_openrc
    key = _key_arg(args.key)
    password = args.password or os.environ.get("MONOSTACK_OPERATOR_PASSWORD")
    if not password and not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    if not password and sys.stdin.isatty():
        password = getpass.getpass(f"Appliance password for {args.name}: ")
    if not password:
        raise SystemExit(f"monostack operator add: give {args.name}'s appliance password with "
                         "--password, MONOSTACK_OPERATOR_PASSWORD or on standard input")
    config = _config(args)
    keys = add_unix_operator(args.name, key, group=args.group)
    asyncio.run(_operator_add(config, args.name, password, args.project, args.role))
    rc = ""
    if config.api.listen:
        rc_path = write_openrc(args.name, openrc(ClientConfig.of(config), args.name,
                                                 args.project), group=args.group)
        rc = f" OpenStack clients: {rc_path} (asks for the password)."
    print(f"operator {args.name}: ssh key in {keys}; appliance user with role {args.role} "
          f"on project {args.project}. `ssh -t {args.name}@<host>` opens the TUI.{rc}")
    return 0


async def _appliance_users(config: Config, names: list[str]) -> dict[str, dict]:
    client = await admin_client(config)
    async with client:
        found = {}
        for name in names:
            users = (await client.get(f"/identity/v3/users?{urlencode({'name': name})}"))["users"]
            if users:
                user = users[0]
                grants = (await client.get("/identity/v3/role_assignments?" + urlencode(
                    {"user.id": user["id"], "include_names": "true"})))["role_assignments"]
                user["grants"] = sorted(
                    f"{g['role']['name']}@{g['scope'].get('project', {}).get('name', '?')}"
                    for g in grants)
                found[name] = user
        return found


def cmd_operator_list(args: argparse.Namespace) -> int:
    from appliance.operators import list_unix_operators
    ops = list_unix_operators(args.group)
    users = asyncio.run(_appliance_users(_config(args), [o.name for o in ops])) if ops else {}
    if not ops:
        print(f"no operators (members of {args.group})")
    for op in ops:
        user = users.get(op.name)
        who = (f"appliance user {', '.join(user['grants']) or 'without roles'}"
               + ("" if user.get("enabled", True) else " (disabled)")) if user else \
            "no appliance user"
        keys = "; ".join(op.keys) or "no ssh key"
        print(f"{op.name}: {who}; {len(op.keys)} key(s): {keys}")
    return 0


async def _operator_remove(config: Config, name: str) -> bool:
    client = await admin_client(config)
    async with client:
        users = (await client.get(f"/identity/v3/users?{urlencode({'name': name})}"))["users"]
        for user in users:
            await client.delete(f"/identity/v3/users/{user['id']}")
        return bool(users)


def cmd_operator_remove(args: argparse.Namespace) -> int:
    from appliance.operators import remove_unix_operator
    config = _config(args)
    remove_unix_operator(args.name, group=args.group)  # refuses accounts that are not operators
    had_user = asyncio.run(_operator_remove(config, args.name))
    print(f"operator {args.name} removed: unix account, home and ssh key"
          + (", appliance user" if had_user else " (there was no appliance user)"))
    return 0


def cmd_operator_rotate_key(args: argparse.Namespace) -> int:
    from appliance.operators import rotate_unix_key
    keys = rotate_unix_key(args.name, _key_arg(args.key), group=args.group)
    print(f"operator {args.name}: {keys} now holds only the new key")
    return 0


def cmd_client_config(args: argparse.Namespace) -> int:
    from appliance.client_config import CLIENT_CONFIG, ClientConfig
    client = ClientConfig.of(_config(args))
    if not args.write:
        print(client.to_toml(), end="")
        return 0
    changed = client.write(Path(args.write))
    print(f"{args.write} {'written' if changed else 'is current; nothing changed'}")
    return 0


def cmd_openrc(args: argparse.Namespace) -> int:
    from appliance.client_config import ClientConfig, openrc
    password = _stored_admin_password() if args.with_password else None
    print(openrc(ClientConfig.of(_config(args)), args.user, args.project, password=password),
          end="")
    return 0
def _stored_admin_password() -> str:
    env = os.environ.get("MONOSTACK_ADMIN_PASSWORD")
    if env:
        return env
    try:
        return ADMIN_PASSWORD_FILE.read_text().strip()
    except OSError as exc:
        raise SystemExit(f"monostack: set MONOSTACK_ADMIN_PASSWORD or make {ADMIN_PASSWORD_FILE} "
                         f"readable ({exc.strerror})")


async def _image_import(config: Config, args: argparse.Namespace) -> int:
    from appliance.client import MonostackClient
    from storage.blobs import iter_file
    client = MonostackClient(args.url, socket_path=None if args.url else config.api.socket,
                             cafile=_cafile(config, args.url, None), timeout=6 * 3600)
    async with client:
        await client.login(args.admin_user, _stored_admin_password(), args.admin_project)
        if args.check:
            found = await client.get("/image/v2/images?" + urlencode(
                {"name": args.check, "status": "active", "visibility": "all"}))
            return 0 if found["images"] else 1
        image = await client.post("/image/v2/images", {
            "name": args.name, "disk_format": args.disk_format,
            "container_format": args.container_format, "visibility": args.visibility})
        try:
            await client.upload("PUT", f"/image/v2/images/{image['id']}/file",
                                iter_file(args.file), headers={
                                    "X-OpenStack-Image-Size": str(Path(args.file).stat().st_size)})
        except BaseException:
            await client.delete(f"/image/v2/images/{image['id']}")
            raise
        shown = await client.get(f"/image/v2/images/{image['id']}")
        print(f"image {shown['name']!r} {shown['id']} {shown['status']} "
              f"({shown['size']} bytes, sha512 {shown['os_hash_value'][:16]}…)")
        return 0 if shown["status"] == "active" else 1


def cmd_image_import(args: argparse.Namespace) -> int:
    if not args.check and (not args.name or not args.file):
        raise SystemExit("monostack image-import: give --name NAME and FILE (or --check NAME)")
    if args.file and not Path(args.file).is_file():
        raise SystemExit(f"monostack image-import: {args.file} is not a file")
    return asyncio.run(_image_import(_config(args), args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monostack", description="OpenStack-in-a-box for one host")
    parser.add_argument("--config", help=f"TOML config (default {DEFAULT_CONFIG} if present)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="bootstrap the admin user and project, default flavors, network")
    p.add_argument("--admin-user", default="admin")
    p.add_argument("--admin-project", default="admin")
    p.add_argument("--admin-password", help="or MONOSTACK_ADMIN_PASSWORD, or a prompt")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", help="run the appliance daemon")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("tui", help="the full-screen operator console")
    p.add_argument("--url", help="daemon URL (default: the local unix socket)")
    p.add_argument("--socket", help="unix socket path")
    p.set_defaults(func=cmd_tui)

    p = sub.add_parser("web", help="the operator console in a browser (TLS, the TUI's login, "
                                   "one session per tab)")
    p.add_argument("--listen", default="0.0.0.0:8443", help="HOST:PORT (default 0.0.0.0:8443)")
    p.add_argument("--socket", help="the daemon's unix socket (default: [api] socket)")
    p.add_argument("--cert", help="TLS certificate (default: [api] tls_cert)")
    p.add_argument("--key", help="TLS key (default: [api] tls_key)")
    p.add_argument("--max-sessions", type=int, default=8,
                   help="browser sessions at once; each is a TUI process (default 8)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("image-import", help="upload a disk image file through the local daemon "
                                            "(or --check NAME: is an active image NAME there)")
    p.add_argument("file", nargs="?", help="the image file")
    p.add_argument("--name")
    p.add_argument("--disk-format", default="qcow2")
    p.add_argument("--container-format", default="bare")
    p.add_argument("--visibility", default="public",
                   choices=["public", "private", "shared", "community"])
    p.add_argument("--check", metavar="NAME", help="exit 0 if an active image NAME exists")
    p.add_argument("--admin-user", default="admin")
    p.add_argument("--admin-project", default="admin")
    p.add_argument("--url", help="daemon URL (default: the local unix socket)")
    p.set_defaults(func=cmd_image_import)

    p = sub.add_parser("status", help="daemon, libvirt, data plane, storage, disk space, counts")
    p.add_argument("--url", help="daemon URL (default: the local unix socket)")
    p.add_argument("--cacert", help="CA for an https --url (default: OS_CACERT or our own CA)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--daemon", action="store_true",
                   help="only ask the daemon: exit 0 when it answers, 3 when it does not")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("tls", help="the private CA and server certificate of the TCP API")
    tls = p.add_subparsers(dest="tls_command", required=True)
    q = tls.add_parser("init", help="create the CA (once) and (re)issue the server certificate "
                                    "when names change or it nears expiry")
    q.add_argument("--dir", help="default: beside [api] tls_cert, else /etc/monostack/tls")
    q.add_argument("--name", action="append",
                   help="extra DNS name or address for the certificate (repeatable)")
    q.set_defaults(func=cmd_tls_init)
    q = tls.add_parser("ca-path", help="print the CA file clients trust (OS_CACERT)")
    q.set_defaults(func=cmd_tls_ca_path)

    p = sub.add_parser("support-matrix", help="which actions work under kvm, qemu/TCG and the "
                                              "test driver (markdown)")
    p.add_argument("--update-readme", metavar="README", help="rewrite the table in this file")
    p.set_defaults(func=cmd_support_matrix)

    p = sub.add_parser("backup", help="consistent online backup of state and metadata (into "
                                      "backup_dir, or moved to PATH)")
    p.add_argument("path", nargs="?")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("audit", help="the audit trail: who changed what, when, and the outcome")
    p.add_argument("--since", help="ISO time, e.g. 2026-12-06T00:00")
    p.add_argument("--user", help="a user id")
    p.add_argument("--project", help="a project id")
    p.add_argument("--outcome", choices=["success", "failure"])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="the CADF records themselves")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("restore", help="restore a backup into the state dir (daemon stopped)")
    p.add_argument("path")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("operator", help="people who SSH into the appliance")
    op = p.add_subparsers(dest="operator_command", required=True)
    q = op.add_parser("add", help="unix account (key login, lands in the TUI) + appliance user")
    q.add_argument("name")
    q.add_argument("--key", required=True, help="OpenSSH public key, or a file holding it")
    q.add_argument("--password", help="appliance password (or MONOSTACK_OPERATOR_PASSWORD, or a prompt)")
    q.add_argument("--project", default="admin")
    q.add_argument("--role", default="member", choices=["reader", "member", "admin"])
    q.add_argument("--group", default=OPERATORS_GROUP,
                   help="unix group whose members land in the TUI (must match the sshd snippet's "
                        "Match Group and [api] socket_group)")
    q.set_defaults(func=cmd_operator_add)
    q = op.add_parser("list", help="operators: unix account, ssh keys, appliance roles")
    q.add_argument("--group", default=OPERATORS_GROUP)
    q.set_defaults(func=cmd_operator_list)
    q = op.add_parser("remove", help="end their sessions; delete unix account, key and "
                                     "appliance user")
    q.add_argument("name")
    q.add_argument("--group", default=OPERATORS_GROUP)
    q.set_defaults(func=cmd_operator_remove)
    q = op.add_parser("rotate-key", help="replace an operator's ssh key(s) with one new key")
    q.add_argument("name")
    q.add_argument("--key", required=True, help="OpenSSH public key, or a file holding it")
    q.add_argument("--group", default=OPERATORS_GROUP)
    q.set_defaults(func=cmd_operator_rotate_key)

    p = sub.add_parser("client-config", help="what clients need to find the appliance (socket, "
                                             "URL, CA; nothing secret)")
    p.add_argument("--write", metavar="PATH", help="write it world-readable (the installer: "
                                                   "/etc/monostack/client.toml)")
    p.set_defaults(func=cmd_client_config)

    p = sub.add_parser("openrc", help="an openrc for the OpenStack clients")
    p.add_argument("--user", default="admin")
    p.add_argument("--project", default="admin")
    p.add_argument("--with-password", action="store_true",
                   help="include the stored admin password (root only); otherwise it asks")
    p.set_defaults(func=cmd_openrc)

    p = sub.add_parser("network", help="the guest data plane")
    net = p.add_subparsers(dest="network_command", required=True)
    q = net.add_parser("teardown", help="remove the data-plane namespace (daemon stopped); "
                                        "guests lose networking until the next start")
    q.set_defaults(func=cmd_network_teardown)

    p = sub.add_parser("doctor", help="check the host and say what to fix")
    p.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config", None) is None:
        args.config = os.environ.get("MONOSTACK_CONFIG")
    try:
        return args.func(args)
    except MonostackError as exc:
        print(f"monostack {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `monostack status | head -2`: the reader left; what it did not read is not an error.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a pipe's writer killed by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
