"""Opening the discovery store a config section names (`backends.discovery` in the config file):

    kind: etcd | consul
    url: http://127.0.0.1:2379         plain http only to a loopback or private (RFC 1918) address
    prefix: /cockpit                   etcd: where the keys live
    token_env: CONSUL_HTTP_TOKEN       consul: the environment variable holding the ACL token
    timeout_s: 3                       every call but a wait for members

Every bad setting is a ValueError naming it. The token is read from the environment here and
handed to the client; it is never kept in the settings, a message or a log.
"""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

from cockpit.backends.discovery import Discovery
from cockpit.backends.discovery_consul import ConsulDiscovery
from cockpit.backends.discovery_etcd import EtcdDiscovery

KINDS = ("etcd", "consul")
KEYS = {"etcd": {"kind", "url", "prefix", "timeout_s"}, "consul": {"kind", "url", "token_env", "timeout_s"}}
DEFAULT_URL = {"etcd": "http://127.0.0.1:2379", "consul": "http://127.0.0.1:8500"}
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
PREFIX_RE = re.compile(r"^/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}$")
MAX_TOKEN = 4096


def _problem(key: str, why: str) -> ValueError:
    return ValueError(f"discovery.{key}: {why}")


def plain_http_ok(host: str) -> bool:
    """Whether plain http may go to `host`: loopback or an RFC 1918 address, not a name that might
    resolve anywhere (but `localhost`)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or (ip.version == 4 and any(ip in n for n in PRIVATE))


def check_url(url: object) -> str:
    """scheme://host[:port] of the store; ValueError naming discovery.url otherwise."""
    if not isinstance(url, str) or not url or len(url) > 4096:
        raise _problem("url", "expected a URL like http://127.0.0.1:2379")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise _problem("url", "not a URL (expected scheme://host[:port])") from None
    if parts.username or parts.password:  # checked first: such a URL is never echoed
        raise _problem("url", "credentials do not go in the URL (consul: token_env names the variable "
                              "holding the token)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _problem("url", f"{url!r} is not an http(s) URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _problem("url", f"{url!r}: expected scheme://host[:port] and nothing more")
    if parts.scheme == "http" and not plain_http_ok(parts.hostname):
        raise _problem("url", f"{url!r}: plain http only to a loopback or private (10/8, 172.16/12, 192.168/16) "
                              "address; use https")
    return f"{parts.scheme}://{parts.netloc}"


def _timeout(settings: dict) -> float:
    t = settings.get("timeout_s", 3.0)
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0.1 <= t <= 600:
        raise _problem("timeout_s", f"{t!r} is not a number of seconds from 0.1 to 600")
    return float(t)


def _token(settings: dict) -> tuple[str | None, str]:
    """The token from the variable `token_env` names (None when it is unset), and that name."""
    name = settings.get("token_env", "CONSUL_HTTP_TOKEN")
    if not isinstance(name, str) or not ENV_RE.match(name):
        raise _problem("token_env", f"{name!r} is not the name of an environment variable")
    token = os.environ.get(name)
    if token is None:
        if "token_env" in settings:  # named on purpose: its absence is a mistake, not "no ACLs"
            raise _problem("token_env", f"${name} is not set")
        return None, name
    if not token or len(token) > MAX_TOKEN or any(c.isspace() or not c.isprintable() for c in token):
        raise _problem("token_env", f"${name} does not hold a token (empty, too long, or with spaces)")
    return token, name


def open_discovery(settings: dict) -> Discovery:
    """The discovery store of a config section; ValueError naming the setting that is wrong."""
    if not isinstance(settings, dict):
        raise ValueError("discovery: expected a mapping with kind: etcd or consul")
    kind = settings.get("kind")
    if kind not in KINDS:
        why = "the simulated platform keeps its own discovery: there is no store to open" if kind == "sim" else \
            f"{kind!r} is not one of {', '.join(KINDS)}"
        raise _problem("kind", why)
    unknown = sorted(set(settings) - KEYS[kind])
    if unknown:
        raise _problem(unknown[0], f"not a setting of {kind} discovery (known: {', '.join(sorted(KEYS[kind]))})")
    url = check_url(settings.get("url", DEFAULT_URL[kind]))
    timeout_s = _timeout(settings)
    if kind == "etcd":
        prefix = settings.get("prefix", "/cockpit")
        if not isinstance(prefix, str) or len(prefix) > 200 or not PREFIX_RE.match(prefix) or ".." in prefix:
            raise _problem("prefix", f"{prefix!r}: expected /name[/name...] of letters, digits and _.-")
        return EtcdDiscovery(url, prefix=prefix, timeout_s=timeout_s)
    token, env = _token(settings)
    return ConsulDiscovery(url, token=token, timeout_s=timeout_s, token_env=env)
