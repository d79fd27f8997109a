"""Settings: where the world and the store are, who the user is, keys, and each concern's backend.

Precedence: command line, then the config file (--config, $COCKPIT_CONFIG, or
~/.config/cockpit/config.yaml), then defaults. Secrets are referenced, never stored here.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cockpit import yamlcheck
from cockpit.yamlcheck import Problem, ProblemsError

SCHEMA_PATH = Path(__file__).with_name("config.schema.json")
ROLES = ("viewer", "operator", "admin")


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
    user: str = field(default_factory=lambda: _default_user())
    role: str = "operator"
    speed: float | None = None  # None: keep the store's clock speed
    tick_s: float = 1.0
    theme: str = "textual-dark"
    keys: dict[str, str] = field(default_factory=dict)
    backends: dict = field(default_factory=dict)  # concern -> settings (see config.schema.json)
    expiry_warn_days: int = 7
    autoscale: bool = True  # the engine evaluates the autoscaling rules
    source: str | None = None  # the config file read, if any


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


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
    for key in ("readonly", "user", "role", "speed", "tick_s", "theme", "expiry_warn_days", "autoscale"):
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
