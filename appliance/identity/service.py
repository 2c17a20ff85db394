"""Keystone's job: users, projects, roles, assignments, password logins and tokens.

Tokens are opaque random strings; the store keeps only their sha256, so a stolen state file
holds no usable token. Every request is validated against the live records: a disabled user,
a password change, a disabled project or a revoked token invalidates tokens at once, and the
roles a request carries are the user's assignments on the token's project now (as Keystone
computes them at validation), not the ones the token was minted with: a removed role stops
working on the next request. An in-memory index of assignments, kept current by the store on
every change, keeps that a dictionary lookup per request.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from appliance.config import IdentityConfig
from appliance.errors import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from appliance.identity.app_credentials import (
    ApplicationCredential, ApplicationCredentials, new_secret,
)
from appliance.identity.domains import DOMAIN_FIELDS, Domain, Domains
from appliance.identity.passwords import MAX_PASSWORD_BYTES, hash_password, verify_password
from appliance.identity.policy import AuthContext
from appliance.identity.records import (
    DEFAULT_DOMAIN_ID, DEFAULT_DOMAIN_NAME, ROLE_NAMES, SYSTEM_SCOPE, Assignment, Project, Role,
    Token, User,
)
from appliance.identity.throttle import LOCAL_SOURCE, KeyedLocks, LoginThrottle
from appliance.state import Repository, Store
from appliance.state.index import FieldIndex


#: How long a password scrypt accepted is recognised without deriving it again (seconds).
VERIFIED_TTL = 300.0


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def iso_from_epoch(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class IdentityService:
    def __init__(self, store: Store, config: IdentityConfig) -> None:
        self.config = config
        self.users = Repository(store, "users", User)
        self.projects = Repository(store, "projects", Project)
        self.roles = Repository(store, "roles", Role)
        self.assignments = Repository(store, "assignments", Assignment)
        self.tokens = Repository(store, "tokens", Token)
        self.app_credentials = ApplicationCredentials(store)
        self.domains = Domains(store)
        self.throttle = LoginThrottle(config.lockout_failures, config.lockout_seconds)
        self._login_locks = KeyedLocks()
        # Names are unique (per domain); the store makes a write visible once it is durable,
        # so each check-then-save runs under this lock, or parallel creates of one name all
        # pass the check (25 parallel creates made 25 users named alike).
        self._names = asyncio.Lock()
        # scrypt releases the GIL: warming the timing equaliser costs start-up no wall time
        threading.Thread(target=_dummy_hash, name="dummy-hash", daemon=True).start()
        self._local_pool = ThreadPoolExecutor(2, thread_name_prefix="login-local")
        self._remote_pool = ThreadPoolExecutor(os.cpu_count() or 1,
                                               thread_name_prefix="login-remote")
        # user id → (keyed digest of stored hash + password, expiry): a password that scrypt
        # accepted a moment ago is not re-derived. Logins of one (user, source) are serialised
        # (exact lockout counting), so without this 50 clients logging in at once as the same
        # user waited for 50 scrypt runs in a row. Wrong passwords always pay full scrypt.
        self._verified: dict[str, tuple[bytes, float]] = {}
        self._verified_key = secrets.token_bytes(32)
        # (user id, project id) → role ids, built at first use and then kept current by the
        # store at O(1) per change: validation is a lookup whatever the table holds.
        self._assignment_index: dict[tuple[str, str], set[str]] | None = None
        store.watch(self.assignments.table, self._assignment_changed)
        # (name, domain id) → ids of users / of projects, kept current the same way: a login
        # names its user and project, and decoding every user to find one grew with the table.
        self._user_names = _NameIndex(store, self.users.table)
        self._project_names = _NameIndex(store, self.projects.table)

    # -- bootstrap ---------------------------------------------------------------------------

    async def bootstrap(self, admin_name: str, password: str, project_name: str = "admin") -> User:
        """Idempotent first-run setup: the three roles, the admin project and user."""
        for name in ROLE_NAMES:
            if self.role_by_name(name) is None:
                await self.roles.save(Role(id=uuid.uuid4().hex, name=name))
        project = self.project_by_name(project_name) or await self.create_project(project_name)
        user = self.user_by_name(admin_name)
        if user is None:
            user = await self.create_user(admin_name, password, default_project_id=project.id)
        else:
            await self.set_password(user.id, password)
        await self.assign(user.id, project.id, self.role_by_name("admin").id)  # type: ignore[union-attr]
        return user

    # -- lookups -----------------------------------------------------------------------------

    def user_by_name(self, name: str, domain_id: str = DEFAULT_DOMAIN_ID) -> User | None:
        return self._user_names.first(self.users, name, domain_id)

    def project_by_name(self, name: str, domain_id: str = DEFAULT_DOMAIN_ID) -> Project | None:
        return self._project_names.first(self.projects, name, domain_id)

    def role_by_name(self, name: str) -> Role | None:
        return next(iter(self.roles.list(lambda r: r.name == name)), None)

    def roles_of(self, user_id: str, project_id: str) -> list[Role]:
        """The roles the user holds on the project now (an index lookup, no table scan)."""
        ids = tuple(self._assignments().get((user_id, project_id), ()))
        roles = (self.roles.get(rid) for rid in ids)
        return sorted((r for r in roles if r is not None), key=lambda r: r.name)

    def _assignments(self) -> dict[tuple[str, str], set[str]]:
        if self._assignment_index is None:
            index: dict[tuple[str, str], set[str]] = {}
            for doc in self.assignments.docs():
                index.setdefault((doc["user_id"], doc["project_id"]), set()).add(doc["role_id"])
            self._assignment_index = index
        return self._assignment_index

    def _assignment_changed(self, _id: str, old: dict | None, new: dict | None) -> None:
        index = self._assignment_index
        if index is None:
            return  # not built yet: the first use reads the table as it is then
        if old is not None:
            key = (old["user_id"], old["project_id"])
            roles = index.get(key)
            if roles is not None:
                roles.discard(old["role_id"])
                if not roles:
                    del index[key]
        if new is not None:
            index.setdefault((new["user_id"], new["project_id"]), set()).add(new["role_id"])

    def projects_of(self, user_id: str) -> list[Project]:
        ids = {a.project_id for a in self.assignments.list(lambda a: a.user_id == user_id)}
        return [p for p in self.projects.list() if p.id in ids]

    # -- users, projects, roles ---------------------------------------------------------------

    async def create_user(self, name: str, password: str | None, *, enabled: bool = True,
                          default_project_id: str | None = None, email: str | None = None,
                          description: str = "", domain_id: str = DEFAULT_DOMAIN_ID) -> User:
        _check_name(name, "user")
        self.domains.require(domain_id)
        if self.user_by_name(name, domain_id):
            raise Conflict(f"Duplicate entry found with name {name} at domain ID {domain_id}.")
        if default_project_id and not self.projects.get(default_project_id):
            raise NotFound(f"Could not find project: {default_project_id}.")
        user = User(id=uuid.uuid4().hex, name=name, enabled=enabled, email=email,
                    domain_id=domain_id,
                    default_project_id=default_project_id, description=description,
                    created_at=now_iso(), password_changed_at=time.time())
        if password is not None:
            user.password_hash = await _hash(password)
        async with self._names:
            if self.user_by_name(name, domain_id):
                raise Conflict(f"Duplicate entry found with name {name} at domain ID "
                               f"{domain_id}.")
            return await self.users.save(user)

    async def set_password(self, user_id: str, password: str) -> User:
        user = self.users.require(user_id)
        user.password_hash = await _hash(password)
        self._verified.pop(user_id, None)
        self.throttle.forget_user(user_id)
        user.password_changed_at = time.time()
        return await self.users.save(user)

    async def update_user(self, user_id: str, **changes: object) -> User:
        user = self.users.require(user_id)
        check_types(changes, USER_FIELDS)
        if "password" in changes:
            password = changes.pop("password")
            if password is not None:
                user = await self.set_password(user_id, password)  # type: ignore[arg-type]
        async with self._names:
            for key, value in changes.items():
                if key == "name":
                    _check_name(str(value), "user")
                    other = self.user_by_name(str(value), user.domain_id)
                    if other and other.id != user_id:
                        raise Conflict(f"Duplicate entry found with name {value}.")
                if key in ("name", "enabled", "email", "description", "default_project_id"):
                    setattr(user, key, value)
            ops = [self.users.put_op(user)]
            if changes.get("enabled") is False:
                # Keystone revokes on disable: re-enabling must not revive a token issued
                # before
                ops += [self.tokens.delete_op(t.id)
                        for t in self.tokens.list(lambda t: t.user_id == user_id)]
            await self.users.store.commit(ops)
        return user

    async def delete_user(self, user_id: str) -> None:
        self.users.require(user_id)
        ops = [self.assignments.delete_op(a.id)
               for a in self.assignments.list(lambda a: a.user_id == user_id)]
        ops += [self.tokens.delete_op(t.id) for t in self.tokens.list(lambda t: t.user_id == user_id)]
        ops += [self.app_credentials.repo.delete_op(c.id)
                for c in self.app_credentials.of_user(user_id)]
        ops.append(self.users.delete_op(user_id))
        await self.users.store.commit(ops)

    async def create_project(self, name: str, *, description: str = "", enabled: bool = True,
                             domain_id: str = DEFAULT_DOMAIN_ID) -> Project:
        _check_name(name, "project")
        async with self._names:
            self.domains.require(domain_id)
            if self.project_by_name(name, domain_id):
                raise Conflict(f"Duplicate entry found with name {name} at domain ID "
                               f"{domain_id}.")
            return await self.projects.save(Project(
                id=uuid.uuid4().hex, name=name, enabled=enabled, description=description,
                created_at=now_iso(), domain_id=domain_id))

    async def update_project(self, project_id: str, **changes: object) -> Project:
        project = self.projects.require(project_id)
        check_types(changes, PROJECT_FIELDS)
        async with self._names:
            for key, value in changes.items():
                if key == "name":
                    _check_name(str(value), "project")
                    other = self.project_by_name(str(value), project.domain_id)
                    if other and other.id != project_id:
                        raise Conflict(f"Duplicate entry found with name {value}.")
                if key in ("name", "enabled", "description"):
                    setattr(project, key, value)
            ops = [self.projects.put_op(project)]
            if changes.get("enabled") is False:  # as for users: disabling revokes for good
                ops += [self.tokens.delete_op(t.id)
                        for t in self.tokens.list(lambda t: t.project_id == project_id)]
            await self.projects.store.commit(ops)
        return project

    async def delete_project(self, project_id: str) -> None:
        self.projects.require(project_id)
        ops = [self.assignments.delete_op(a.id)
               for a in self.assignments.list(lambda a: a.project_id == project_id)]
        ops += [self.tokens.delete_op(t.id)
                for t in self.tokens.list(lambda t: t.project_id == project_id)]
        ops += [self.app_credentials.repo.delete_op(c.id) for c in
                self.app_credentials.repo.list(lambda c: c.project_id == project_id)]
        ops.append(self.projects.delete_op(project_id))
        await self.projects.store.commit(ops)

    # -- domains -------------------------------------------------------------------------------

    async def create_domain(self, name: str, *, description: str = "",
                            enabled: bool = True) -> Domain:
        async with self._names:
            return await self.domains.repo.save(self.domains.new(name, description, enabled,
                                                                 now_iso()))

    async def update_domain(self, domain_id: str, **changes: object) -> Domain:
        domain = self.domains.require(domain_id)
        check_types(changes, DOMAIN_FIELDS)
        if domain.id == DEFAULT_DOMAIN_ID and changes:
            raise Forbidden("The default domain cannot be changed.")
        async with self._names:
            if "name" in changes and changes["name"] != domain.name:
                fresh = self.domains.new(str(changes["name"]), "", True, "")  # checks the name
                domain.name = fresh.name
            for key in ("enabled", "description"):
                if key in changes:
                    setattr(domain, key, changes[key] if changes[key] is not None else "")
            return await self.domains.repo.save(domain)

    async def delete_domain(self, domain_id: str) -> None:
        """Its projects and users go with it (Keystone's cascade), once it is disabled."""
        domain = self.domains.require(domain_id)
        self.domains.check_deletable(domain)
        for project in self.projects.list(lambda p: p.domain_id == domain.id):
            await self.delete_project(project.id)
        for user in self.users.list(lambda u: u.domain_id == domain.id):
            await self.delete_user(user.id)
        await self.domains.repo.delete(domain.id)

    async def create_role(self, name: str) -> Role:
        _check_name(name, "role")
        async with self._names:
            if self.role_by_name(name):
                raise Conflict(f"Duplicate entry found with name {name}.")
            return await self.roles.save(Role(id=uuid.uuid4().hex, name=name))

    async def delete_role(self, role_id: str) -> None:
        self.roles.require(role_id)
        ops = [self.assignments.delete_op(a.id)
               for a in self.assignments.list(lambda a: a.role_id == role_id)]
        ops.append(self.roles.delete_op(role_id))
        await self.roles.store.commit(ops)

    async def assign(self, user_id: str, project_id: str, role_id: str) -> Assignment:
        """A role on a project, or on the system when `project_id` is SYSTEM_SCOPE."""
        self.users.require(user_id)
        if project_id != SYSTEM_SCOPE:
            self.projects.require(project_id)
        self.roles.require(role_id)
        a = Assignment(id=Assignment.make_id(user_id, project_id, role_id),
                       user_id=user_id, project_id=project_id, role_id=role_id)
        return await self.assignments.save(a)

    async def unassign(self, user_id: str, project_id: str, role_id: str) -> None:
        aid = Assignment.make_id(user_id, project_id, role_id)
        self.assignments.require(aid)
        await self.assignments.delete(aid)

    # -- authentication ----------------------------------------------------------------------

    async def authenticate(self, *, user_name: str | None, user_id: str | None, password: str,
                           project_name: str | None = None, project_id: str | None = None,
                           domain: str | None = None, unscoped: bool = False,
                           system: bool = False, project_domain: str | None = None,
                           source: str = LOCAL_SOURCE) -> tuple[str, Token]:
        """A token for a password login from `source` (LOCAL_SOURCE or a peer address).

        No scope asked for: the token is scoped to the user's default project when the user
        holds a role there, else unscoped (Keystone's rule); `unscoped` asks for one outright.

        An unknown user, a wrong password, a disabled user and a user locked out from this
        source all get the same 401 after the same scrypt work, so none can be told apart
        from outside. Attempts for one (user, source) are serialised, for exact counting."""
        refused = Unauthorized("The request you have made requires authentication.")
        if len(password.encode()) > MAX_PASSWORD_BYTES:
            raise refused
        dom = self.domains.find(domain)  # the user's domain, by id or name
        user = self.users.get(user_id) if user_id else (
            self.user_by_name(user_name or "", dom.id) if dom else None)
        key = (user.id if user else "?" + (user_id or user_name or ""), source)
        async with self._login_locks.hold(key):
            user = self.users.get(user.id) if user else None
            if user is None or self.throttle.locked(user.id, source, time.time()):
                await self._verify(password, _dummy_hash(), source)
                raise refused
            if not await self._check_password(user, password, time.time(), source):
                self.throttle.failed(user.id, source, time.time())
                raise refused
            if not user.enabled or not self.domains.enabled(user.domain_id):
                raise refused
            self.throttle.succeeded(user.id, source)
        project = None
        if system:
            return await self._mint_system(user.id, time.time() + self.config.token_ttl,
                                           user.password_changed_at)
        if project_id or project_name:
            pdom = self.domains.find(project_domain)
            project = (self.projects.get(project_id) if project_id
                       else self.project_by_name(project_name or "", pdom.id) if pdom else None)
            if project is None or not project.enabled \
                    or not self.domains.enabled(project.domain_id):
                raise refused
            roles = self.roles_of(user.id, project.id)
            if not roles:
                raise Unauthorized(f"User {user.id} has no access to project {project.id}")
        elif not unscoped and user.default_project_id:
            project = self.projects.get(user.default_project_id)
            roles = self.roles_of(user.id, project.id) if project and project.enabled else []
            if not roles:
                project = None
        else:
            roles = []
        issued = time.time()
        return await self._mint(user.id, project.id if project else None,
                                [r.name for r in roles], issued + self.config.token_ttl,
                                user.password_changed_at)

    async def _check_password(self, user: User, password: str, now: float, source: str) -> bool:
        mark = hmac.new(self._verified_key, user.password_hash.encode() + b"\0"
                        + password.encode(), hashlib.sha256).digest()
        seen = self._verified.get(user.id)
        if seen is not None and seen[1] > now and hmac.compare_digest(seen[0], mark):
            return True
        ok = await self._verify(password, user.password_hash, source)
        if ok:
            self._verified[user.id] = (mark, now + VERIFIED_TTL)
        else:
            self._verified.pop(user.id, None)
        return ok

    async def _verify(self, password: str, stored: str, source: str) -> bool:
        """scrypt in a thread pool of the source's kind: logins over the local socket have
        threads of their own, so a flood of TCP logins neither queues them nor (in the
        default pool) the store's fsyncs."""
        pool = self._local_pool if source == LOCAL_SOURCE else self._remote_pool
        return await asyncio.get_running_loop().run_in_executor(
            pool, verify_password, password, stored)

    async def _mint_system(self, user_id: str, expires_at: float,
                           password_changed_at: float) -> tuple[str, Token]:
        roles = self.roles_of(user_id, SYSTEM_SCOPE)
        if not roles:
            raise Unauthorized(f"User {user_id} has no access to the system.")
        secret, token = await self._mint(user_id, None, [r.name for r in roles], expires_at,
                                         password_changed_at, system=True)
        return secret, token

    async def rescope(self, secret: str, *, project_id: str | None = None,
                      project_name: str | None = None,
                      system: bool = False) -> tuple[str, Token]:
        """A token for another project of the same user (or for the system), expiring with
        the one it came from."""
        auth = self.validate(secret)
        if self.tokens.require(auth.token_id).app_cred_id:
            raise Forbidden("A token from an application credential is bound to its project.")
        if system:
            old = self.tokens.require(auth.token_id)
            return await self._mint_system(auth.user_id, old.expires_at, old.password_changed_at)
        target = (self.projects.get(project_id) if project_id
                  else self.project_by_name(project_name or ""))
        roles = self.roles_of(auth.user_id, target.id) if target and target.enabled else []
        if not roles:
            raise Unauthorized("The request you have made requires authentication.")
        old = self.tokens.require(auth.token_id)
        return await self._mint(auth.user_id, target.id, [r.name for r in roles],
                                old.expires_at, old.password_changed_at)

    # -- application credentials ---------------------------------------------------------------

    async def create_app_credential(self, auth: AuthContext, *, name: str, secret: str | None,
                                    role_names: list[str] | None, description: str,
                                    expires_at: float | None, unrestricted: bool
                                    ) -> tuple[ApplicationCredential, str]:
        """A credential for the caller's own project, with at most the roles the caller holds
        there now; returns it and its secret (shown once)."""
        if not auth.project_id:
            raise Forbidden("A project-scoped token is required to create an application "
                            "credential.")
        _check_name(name, "application credential")
        token = self.tokens.get(auth.token_id)
        self.app_credentials.check_new(auth.user_id, name,
                                       made_with=token.app_cred_id if token else None,
                                       expires_at=expires_at)
        held = {r.name: r.id for r in self.roles_of(auth.user_id, auth.project_id)}
        wanted = role_names or list(held)  # none named (or []): every role held, as Keystone
        missing = [n for n in wanted if n not in held]
        if missing or not wanted:
            raise Forbidden(f"Cannot grant roles the user does not hold on the project: "
                            f"{', '.join(missing) or 'none given'}.")
        secret = secret or new_secret()
        cred = self.app_credentials.new(
            user_id=auth.user_id, project_id=auth.project_id, name=name,
            secret_hash=await _hash(secret), roles=[held[n] for n in dict.fromkeys(wanted)],
            description=description, expires_at=expires_at, unrestricted=unrestricted)
        async with self._names:  # again: the hash above yielded to parallel creates
            self.app_credentials.check_new(auth.user_id, name, made_with=None,
                                           expires_at=expires_at)
            await self.app_credentials.repo.save(cred)
        return cred, secret

    async def delete_app_credential(self, user_id: str, cred_id: str) -> None:
        cred = self.app_credentials.require_own(user_id, cred_id)
        ops = [self.tokens.delete_op(t.id)
               for t in self.tokens.list(lambda t: t.app_cred_id == cred.id)]
        ops.append(self.app_credentials.repo.delete_op(cred.id))
        await self.tokens.store.commit(ops)

    async def authenticate_app_credential(self, *, cred_id: str | None, name: str | None,
                                          user_id: str | None, user_name: str | None,
                                          secret: str, source: str = LOCAL_SOURCE
                                          ) -> tuple[str, Token]:
        """A token from an application credential: the same 401 for every refusal, after the
        same scrypt work, as password logins."""
        refused = Unauthorized("The request you have made requires authentication.")
        if len(secret.encode()) > MAX_PASSWORD_BYTES:
            raise refused
        cred = self.app_credentials.get(cred_id) if cred_id else None
        if cred is None and name:
            owner = self.users.get(user_id) if user_id else self.user_by_name(user_name or "")
            cred = self.app_credentials.by_name(owner.id, name) if owner else None
        if cred is None or cred.expired(time.time()):
            await self._verify(secret, _dummy_hash(), source)
            raise refused
        if not await self._verify(secret, cred.secret_hash, source):
            raise refused
        user, project = self.users.get(cred.user_id), self.projects.get(cred.project_id)
        if user is None or not user.enabled or project is None or not project.enabled:
            raise refused
        roles = self._app_cred_roles(cred, user.id)
        if not roles:
            raise refused
        expires = time.time() + self.config.token_ttl
        if cred.expires_at is not None:
            expires = min(expires, cred.expires_at)
        return await self._mint(user.id, project.id, sorted(roles), expires,
                                user.password_changed_at, app_cred_id=cred.id)

    def token_roles(self, token: Token) -> list[Role]:
        """The roles a project-scoped token carries now: the user's current ones, bounded by
        its application credential's when it came from one."""
        roles = self.roles_of(token.user_id,
                              SYSTEM_SCOPE if token.system else token.project_id or "")
        if token.app_cred_id:
            cred = self.app_credentials.get(token.app_cred_id)
            allowed = set(cred.roles) if cred else set()
            roles = [r for r in roles if r.id in allowed]
        return roles

    def _app_cred_roles(self, cred: ApplicationCredential, user_id: str) -> set[str]:
        """The credential's roles the user still holds on its project (names)."""
        held = {r.id: r.name for r in self.roles_of(user_id, cred.project_id)}
        return {held[r] for r in cred.roles if r in held}

    async def _mint(self, user_id: str, project_id: str | None, roles: list[str],
                    expires_at: float, password_changed_at: float,
                    app_cred_id: str = "", system: bool = False) -> tuple[str, Token]:
        secret = secrets.token_urlsafe(32)
        token = Token(id=token_key(secret), user_id=user_id, project_id=project_id,
                      roles=roles, issued_at=time.time(), expires_at=expires_at,
                      audit_id=secrets.token_urlsafe(16)[:22],
                      password_changed_at=password_changed_at, app_cred_id=app_cred_id,
                      system=system)
        await self.tokens.save(token)
        return secret, token

    def validate(self, secret: str | None) -> AuthContext:
        """The per-request check; in memory, no I/O."""
        if not secret:
            raise Unauthorized("The request you have made requires authentication.")
        token = self.tokens.get(token_key(secret))
        if token is None or token.expires_at <= time.time():
            raise Unauthorized("The request you have made requires authentication.")
        user = self.users.get(token.user_id)
        if user is None or not user.enabled or user.password_changed_at != token.password_changed_at \
                or not self.domains.enabled(user.domain_id):
            raise Unauthorized("The request you have made requires authentication.")
        project = self.projects.get(token.project_id) if token.project_id else None
        roles: frozenset[str] = frozenset()
        if token.project_id:
            if project is None or not project.enabled \
                    or not self.domains.enabled(project.domain_id):
                raise Unauthorized("The request you have made requires authentication.")
            roles = frozenset(r.name for r in self.roles_of(user.id, project.id))
            if token.app_cred_id:  # bounded by the credential, which must still exist
                cred = self.app_credentials.get(token.app_cred_id)
                if cred is None or cred.expired(time.time()):
                    raise Unauthorized("The request you have made requires authentication.")
                roles = roles & frozenset(self._app_cred_roles(cred, user.id))
            if not roles:  # every role on the project removed: the token is dead (Keystone)
                raise Unauthorized("The request you have made requires authentication.")
        elif token.system:
            roles = frozenset(r.name for r in self.roles_of(user.id, SYSTEM_SCOPE))
            if not roles:
                raise Unauthorized("The request you have made requires authentication.")
        return AuthContext(user_id=user.id, user_name=user.name,
                           project_id=token.project_id,
                           project_name=project.name if project else None,
                           roles=roles, token_id=token.id, expires_at=token.expires_at,
                           system=token.system)

    def token_record(self, secret: str) -> Token:
        self.validate(secret)
        return self.tokens.require(token_key(secret))

    async def revoke(self, secret: str) -> None:
        key = token_key(secret)
        if self.tokens.get(key) is None:
            raise NotFound("Could not find token.")
        await self.tokens.delete(key)

    async def purge_expired_tokens(self) -> int:
        now = time.time()
        dead = self.tokens.list(lambda t: t.expires_at <= now)
        if dead:
            await self.tokens.store.commit([self.tokens.delete_op(t.id) for t in dead])
        return len(dead)


@functools.cache
def _dummy_hash() -> str:
    """Made once per process, off the start-up path (a full scrypt: ~0.1-0.3 s of CPU that
    every daemon start paid at import); IdentityService warms it in a thread."""
    return hash_password("monostack-timing-equaliser")


async def _hash(password: str) -> str:
    if not isinstance(password, str) or not password:
        raise Invalid("A password must be a non-empty string.")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise Invalid(f"A password may be at most {MAX_PASSWORD_BYTES} bytes.")
    return await asyncio.to_thread(hash_password, password)


#: The types Keystone's schema allows for each writable field (anything else is a 400, never
#: stored: `"enabled": "false"` would otherwise read as true).
USER_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "password": (str, type(None)), "enabled": (bool,),
    "email": (str, type(None)), "description": (str, type(None)),
    "default_project_id": (str, type(None))}
PROJECT_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "enabled": (bool,), "description": (str, type(None))}


def check_types(changes: dict[str, object], fields: dict[str, tuple[type, ...]]) -> None:
    for key, value in changes.items():
        allowed = fields.get(key)
        if allowed is not None and not isinstance(value, allowed):
            raise Invalid(f"Invalid input for field '{key}': {value!r} is not "
                          + " or ".join("null" if t is type(None) else t.__name__ for t in allowed))


def _check_name(name: str, kind: str) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise Invalid(f"A {kind} name must be 1 to 255 characters.")


class _NameIndex(FieldIndex):
    """(name, domain id) → record ids of one table, kept current by the store."""

    def __init__(self, store: Store, table: str) -> None:
        super().__init__(store, table, _name_key)

    def first(self, repo: Repository, name: str, domain_id: str) -> Any:
        for id in sorted(self.ids((name, domain_id))):
            record = repo.get(id)
            if record is not None and record.name == name and record.domain_id == domain_id:
                return record
        return None


def _name_key(doc: dict) -> tuple[str, str]:
    return doc.get("name", ""), doc.get("domain_id", DEFAULT_DOMAIN_ID)
