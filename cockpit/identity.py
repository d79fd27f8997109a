"""Who is using Cockpit, and what they may do.

The user is the operating system's: the user of this process's uid, never a name from the
environment, a flag or a config file. The role comes from a mapping of users and groups to roles
that only root can change: a file owned by root (uid 0) that neither its group nor others may
write, by default /etc/cockpit/roles.yaml:

    users:  {alice: admin, bob: operator}
    groups: {sre: operator, sre-leads: admin}

A user's own entry decides; otherwise the highest role among their groups (primary and
supplementary); otherwise they are a viewer. With no file at the default place, root is an admin
(root can write the mapping anyway) and everyone else a viewer. `--role` (or the config's `role`)
and `--readonly` can only lower what the mapping gives.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass, field, replace

from cockpit import yamlcheck

ROLES = ("viewer", "operator", "admin")
DEFAULT_ROLES_FILE = "/etc/cockpit/roles.yaml"
ROLES_ENV = "COCKPIT_ROLES"  # another mapping file, held to the same rules
MAX_BYTES = 1024 * 1024

_NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^[^\s:]+$|^uid:[0-9]{1,10}$"}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        kind: {
            "type": "object",
            "propertyNames": {**_NAME, "title": f"a {kind[:-1]} name"},
            "additionalProperties": {"enum": list(ROLES)},
        }
        for kind in ("users", "groups")
    },
}


class IdentityError(ValueError):
    """Who you are or what you may do cannot be settled: one line that says why."""


def rank(role: str) -> int:
    return ROLES.index(role)


# --- the operating system's user -----------------------------------------------------------------


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    groups: tuple[str, ...]  # the primary group first, then the supplementary ones


def os_user(uid: int | None = None) -> OsUser:
    """The user of `uid` (this process's by default) and their groups, from the user database."""
    uid = os.getuid() if uid is None else uid
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:  # a uid the user database does not name (a bare container): known by number
        gids = os.getgroups() if uid == os.getuid() else []
        return OsUser(f"uid:{uid}", uid, _group_names(gids))
    return OsUser(pw.pw_name, uid, _group_names(os.getgrouplist(pw.pw_name, pw.pw_gid)))


def _group_names(gids: list[int]) -> tuple[str, ...]:
    out: list[str] = []
    for gid in gids:
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:  # a group without a name cannot be named in the mapping either
            continue
        if name not in out:
            out.append(name)
    return tuple(out)


# --- the mapping -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleMap:
    file: str
    users: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)

    def grant(self, who: OsUser) -> tuple[str, str]:
        """(role, why): the user's own entry, else their groups' highest, else viewer."""
        if who.name in self.users:
            return self.users[who.name], f"user {who.name} in {self.file}"
        by_group = [(self.groups[g], g) for g in who.groups if g in self.groups]
        if by_group:
            role, group = max(by_group, key=lambda x: rank(x[0]))
            return role, f"group {group} in {self.file}"
        return "viewer", f"no entry for {who.name} or their groups in {self.file}"


def mapping_path(setting: str | None = None) -> tuple[str, bool]:
    """The mapping file to read: the config's `roles_file`, else $COCKPIT_ROLES, else the default.
    The second value is True when it was named (then it must exist)."""
    named = setting or os.environ.get(ROLES_ENV)
    return (named, True) if named else (DEFAULT_ROLES_FILE, False)


def load_mapping(path: str) -> RoleMap:
    """Read a mapping file: only a regular file owned by root that its group and others cannot
    write, checked on the file opened (a file swapped in after the check is not read)."""
    where = f"role mapping {path}"
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before opening: opening a device may act on it
            raise IdentityError(f"{where}: not a regular file: refused")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise IdentityError(f"{where}: no such file") from None
    except (OSError, ValueError) as e:
        raise IdentityError(f"{where}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    try:
        st = os.fstat(fd)
        _check_safe(where, st)
        raw = yamlcheck._read_at_most(fd, MAX_BYTES + 1)  # bounded, as world files are
    except OSError as e:
        raise IdentityError(f"{where}: cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise IdentityError(f"{where}: too big: more than {MAX_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise IdentityError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    doc, problems = yamlcheck.parse(text, path)
    if not problems:
        problems = yamlcheck.validate(doc, SCHEMA)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IdentityError(f"role mapping {problems[0]}{more}")
    data = doc.data or {}
    return RoleMap(path, dict(data.get("users") or {}), dict(data.get("groups") or {}))


def _check_safe(where: str, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise IdentityError(f"{where}: not a regular file: refused")
    if st.st_uid != 0:
        try:
            owner = f"{pwd.getpwuid(st.st_uid).pw_name} (uid {st.st_uid})"
        except KeyError:
            owner = f"uid {st.st_uid}"
        raise IdentityError(f"{where}: owned by {owner}, not root: refused (only root may decide roles)")
    writable = [who for who, bit in (("its group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if st.st_mode & bit]
    if writable:
        raise IdentityError(f"{where}: writable by {' and '.join(writable)} (mode {stat.S_IMODE(st.st_mode):04o}): "
                            "refused (only root may change it: chmod go-w)")


# --- the identity of a run ---------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    user: str
    uid: int
    groups: tuple[str, ...]
    granted: str  # what the mapping gives
    because: str  # where that comes from, in words
    role: str  # what this run uses: the granted role, or a lower one asked for
    lowered_by: str | None = None  # what asked for the lower role

    def lowered(self, role: str | None, by: str) -> Identity:
        """This identity with the role asked for, which may not be above the granted one."""
        if role is None:
            return replace(self, role=self.granted, lowered_by=None)
        if role not in ROLES:
            raise IdentityError(f"{by} {role}: not a role (roles: {', '.join(ROLES)})")
        if rank(role) > rank(self.granted):
            raise IdentityError(f"{by} {role}: {self.user} is {_a(self.granted)} ({self.because}); "
                                "a role can only be lowered, never raised")
        return replace(self, role=role, lowered_by=by if role != self.granted else None)

    def describe(self) -> str:
        """Where the role comes from: said beside a refusal."""
        if self.lowered_by:
            return f"{self.lowered_by} {self.role}; the mapping gives {self.user} {self.granted}"
        return self.because


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def resolve(asked: str | None = None, asked_by: str = "--role", roles_file: str | None = None,
            uid: int | None = None) -> Identity:
    """This process's user, the role the mapping gives them, and the role asked for (only lower)."""
    who = os_user(uid)
    granted, because = _granted(who, roles_file)
    return Identity(who.name, who.uid, who.groups, granted, because, granted).lowered(asked, asked_by)


def _granted(who: OsUser, roles_file: str | None) -> tuple[str, str]:
    path, named = mapping_path(roles_file)
    if not named and not os.path.lexists(path):
        return ("admin", f"root, and no role mapping at {path}") if who.uid == 0 else \
            ("viewer", f"no role mapping at {path}")
    return load_mapping(path).grant(who)


def resolve_named(name: str, cap: str, roles_file: str | None = None) -> Identity:
    """Someone else, by the name the database recorded for them (an engine answering a request):
    the role this machine's mapping gives that user and their groups, lowered to `cap` (the role
    their own Cockpit ran with). A name this machine's user database does not know (a user of
    another jump host) gets only what the mapping says of the name itself."""
    if not name or len(name) > 64:
        raise IdentityError(f"requester {name[:64]!r}: not a user name")
    if cap not in ROLES:
        raise IdentityError(f"requester {name}: role {cap[:20]!r} is not a role (roles: {', '.join(ROLES)})")
    try:
        entry = pwd.getpwnam(name)
        who = OsUser(name, entry.pw_uid, _group_names(os.getgrouplist(name, entry.pw_gid)))
    except KeyError:
        who = OsUser(name, -1, ())
    granted, because = _granted(who, roles_file)
    ident = Identity(who.name, who.uid, who.groups, granted, because, granted)
    return ident.lowered(cap if rank(cap) < rank(granted) else None, "their Cockpit's role")
