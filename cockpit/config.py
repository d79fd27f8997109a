"""Settings: where the world and the store are, keys, and each concern's backend; and who the user
is, which no setting chooses (cockpit/identity.py: the OS user, the role from a root-owned mapping).

Precedence: command line, then the config file (--config, $COCKPIT_CONFIG, or
~/.config/cockpit/config.yaml), then defaults. Secrets are referenced, never stored here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cockpit import yamlcheck
from cockpit.identity import ROLES, Identity, resolve
from cockpit.yamlcheck import Problem, ProblemsError

SCHEMA_PATH = Path(__file__).with_name("config.schema.json")
__all__ = ["ROLES", "Config", "ConfigError", "load", "check_keys"]


class ConfigError(ProblemsError):
    pass


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


@dataclass
class Config:
    world: str | None = None  # None: the demo world
    db: str | None = None  # None: <data dir>/<world name>.db
    readonly: bool = False
    asked_role: str | None = None  # --role or the file's `role`: lowers the mapping's role, never raises it
    asked_by: str = "--role"  # which of the two asked, for the message when it asks too much
    roles_file: str | None = None  # the file's `roles_file`, else $COCKPIT_ROLES, else /etc/cockpit/roles.yaml
    speed: float | None = None  # None: keep the store's clock speed
    tick_s: float = 1.0
    theme: str = "textual-dark"
    keys: dict[str, str] = field(default_factory=dict)
    backends: dict = field(default_factory=dict)  # concern -> settings (see config.schema.json)
    expiry_warn_days: int = 7
    autoscale: bool = True  # the engine evaluates the autoscaling rules
    engine: str = "auto"  # the TUI's engine: inside its process, apart in its own, or auto (by the world's size)
    source: str | None = None  # the config file read, if any
    _identity: Identity | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def identity(self) -> Identity:
        """Who runs this Cockpit and with which role; settled on first use. IdentityError says
        why it cannot be (an unsafe mapping file, a role asked for above the mapping's)."""
        if self._identity is None:
            self._identity = resolve(self.asked_role, self.asked_by, self.roles_file)
        return self._identity

    @property
    def user(self) -> str:
        """The operating system's user of this process: what the audit log and tasks name."""
        return self.identity.user

    @property
    def role(self) -> str:
        return self.identity.role

    @role.setter
    def role(self, value: str) -> None:
        """Ask for another role: at most the mapping's (the mapping is read again)."""
        self._identity = resolve(value, self.asked_by, self.roles_file)
        self.asked_role = value


def as_requester(cfg: Config, who: Identity, readonly: bool) -> Config:
    """This config acting for someone else (an engine answering their request)."""
    other = dataclasses.replace(cfg, readonly=readonly)
    other._identity = who
    return other


def default_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "cockpit" / "config.yaml"


def load(path: str | None = None) -> Config:
    """The config file named, or the default one when it exists, or defaults. Raises ConfigError."""
    explicit = path or os.environ.get("COCKPIT_CONFIG")
    file = Path(explicit) if explicit else default_path()
    if not explicit and not file.exists():
        return Config()
    doc, problems = yamlcheck.read(file)
    if not problems:
        problems = yamlcheck.validate(doc, schema())
    if problems:
        raise ConfigError(problems)
    d = doc.data or {}
    base = file.parent
    cfg = Config(source=str(file))
    if "world" in d:
        cfg.world = str((base / os.path.expanduser(d["world"])).resolve())
    if "db" in d:
        db = d["db"]
        cfg.db = db if "://" in db else str((base / os.path.expanduser(db)).resolve())
    if "user" in d:  # files written for an older Cockpit: say why, rather than "unknown key"
        from cockpit.identity import os_user

        raise ConfigError([doc.problem(("user",), f"no longer read: you are the operating system's user "
                                                 f"({os_user().name}); roles come from the role mapping")])
    if "role" in d:
        cfg.asked_role, cfg.asked_by = d["role"], f"{file}: role"
    if "roles_file" in d:
        cfg.roles_file = str((base / os.path.expanduser(d["roles_file"])).resolve())
    for key in ("readonly", "speed", "tick_s", "theme", "expiry_warn_days", "autoscale", "engine"):
        if key in d:
            setattr(cfg, key, d[key])
    cfg.keys = dict(d.get("keys", {}))
    cfg.backends = dict(d.get("backends", {}))
    for concern in cfg.backends.values():  # paths in the file are relative to it
        for key in ("file", "private_key_file", "root_dir"):
            holder = concern.get("credentials", concern) if key == "file" else concern
            if key in holder:
                holder[key] = str((base / os.path.expanduser(holder[key])).resolve())
    front = cfg.backends.get("front", {})
    if "prefix" in front:  # a directory (discovery's prefix is a key prefix, not a path)
        front["prefix"] = str((base / os.path.expanduser(front["prefix"])).resolve())
    for where in cfg.backends.get("registry", {}).get("registries", {}).values():
        c = where.get("credentials", {})
        if "file" in c:
            c["file"] = str((base / os.path.expanduser(c["file"])).resolve())
    return cfg


def check_keys(cfg: Config, known: set[str], clashes: list[tuple[str, str]] = ()) -> list[Problem]:
    """Binding ids in `keys` that the app does not have, and remaps whose key another binding
    already uses where it acts (`clashes`: see keymap.clashes)."""
    file = cfg.source or "config"
    out = [
        Problem(file, 0, f"keys.{k}", f"no binding with this id (known: {', '.join(sorted(known))})")
        for k in cfg.keys
        if k not in known
    ]
    return out + [Problem(file, 0, f"keys.{k}", why) for k, why in clashes]
