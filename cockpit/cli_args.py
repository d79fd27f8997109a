"""What every `cockpit` argument may be, checked before anything runs, and the parser that says
so in one line (`cockpit plan: error: argument --count: ...`) with exit code 2."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from typing import NoReturn

MAX_ID = 2**63 - 1  # SQLite's largest integer
MAX_MESSAGE = 400  # characters of an error line
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # pools, IDCs, services, hosts, zones, types
_WHOLE = re.compile(r"[+-]?[0-9]{1,30}")
_ADDRESS = re.compile(r"[A-Za-z0-9.:%_-]{1,253}")
_TEMPLATE = re.compile(r"(sid:)?([0-9]{1,30})")
_ACTION = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


def one_line(text: str) -> str:
    """Control characters escaped (a newline in an argument must not break the line), and bounded."""
    out = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return out if len(out) <= MAX_MESSAGE else out[: MAX_MESSAGE - 1] + "…"


def shown(text: str) -> str:
    """An argument as an error message quotes it: repr, cut short."""
    return repr(text) if len(text) <= 40 else repr(text[:40]) + "…"


class Parser(argparse.ArgumentParser):
    """argparse, with each error on one line. `--help` still prints the whole help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


class SubParser(Parser):
    """A subcommand's parser: it names itself for arguments it does not know, where argparse would
    leave them to the top-level parser (`cockpit: error: unrecognized arguments`)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def whole(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """A whole number from lo to hi: 'expected a seed from 0 to ..., got -5'."""

    def parse(text: str) -> int:
        s = text.strip()
        if not _WHOLE.fullmatch(s):
            raise argparse.ArgumentTypeError(f"expected a whole number, got {shown(text)}")
        n = int(s)
        if not lo <= n <= hi:
            got = s if len(s) <= 40 else s[:40] + "…"
            raise argparse.ArgumentTypeError(f"expected {what} from {lo} to {hi}, got {got}")
        return n

    return parse


def real(lo: float, hi: float, *, open_low: bool = False) -> Callable[[str], float]:
    """A finite number in [lo, hi] (or (lo, hi])."""
    span = f"{'(' if open_low else '['}{lo:g}, {hi:g}]"

    def parse(text: str) -> float:
        try:
            if not text.isascii():  # float() would read other scripts' digits
                raise ValueError(text)
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {shown(text)}") from None
        if not (math.isfinite(v) and (lo < v if open_low else lo <= v) and v <= hi):
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {shown(text)}")
        return v

    return parse


count = whole(1, 10_000_000, "a count")
order_count = whole(1, 10_000, "a count of hosts")  # an ECS order's limit
scale_in_count = whole(1, 100_000, "a count of containers")
seed = whole(0, MAX_ID, "a seed")
ident = whole(1, MAX_ID, "an id")
port = whole(0, 65535, "a port")
in_flight = whole(1, 100, "a number of calls")
speed = real(0, 100_000, open_low=True)
latency_ms = real(0, 60_000)
rate = real(0, 100_000, open_low=True)
STOCK_MAX = 1_000_000
FAULT_TIMES_MAX = 1_000_000


def name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected a name of letters, digits, '-', '_' or '.' (at most 128), got {shown(text)}")
    return text


def template(text: str) -> str:
    """plan --template: a sid (101, sid:101) or a template's name."""
    m = _TEMPLATE.fullmatch(text)
    if m:
        ident(m[2])
        return text
    try:
        return name(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a template's sid or name, got {shown(text)}") from None


_IMAGE = re.compile(r"[a-z0-9][a-z0-9._/-]{0,254}:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def image(text: str) -> str:
    """An image NAME:TAG as registries name them."""
    if not _IMAGE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected an image NAME:TAG (lower-case name), got {shown(text)}")
    return text


def user(text: str) -> str:
    """A user's name as the audit log has it (`audit list --user`)."""
    if not (0 < len(text) <= 64 and text.isprintable() and text == text.strip()):
        raise argparse.ArgumentTypeError(f"expected a user name (1 to 64 printable characters), got {shown(text)}")
    return text


def db_role(text: str) -> str:
    """A PostgreSQL role to create or grant (`store secure`): quoted safely, so a strict shape."""
    from cockpit.store.guards import ROLE_NAME

    if not ROLE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a database role name (lower-case letters, digits, _ . -; "
                                         f"at most 63, starting with a letter or _), got {shown(text)}")
    return text


def no_user(text: str) -> str:
    """The old `cockpit --user`: who you are is no longer chosen."""
    from cockpit.identity import os_user

    raise argparse.ArgumentTypeError(f"no longer taken: you are the operating system's user ({os_user().name}); "
                                     "roles come from the role mapping")


def path(text: str) -> str:
    """A file path or store URL: not empty, one line, bounded."""
    if not text or len(text) > 4096 or not text.isprintable():
        raise argparse.ArgumentTypeError(f"expected a path (1 to 4096 printable characters), got {shown(text)}")
    return text


def address(text: str) -> str:
    if not _ADDRESS.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a host name or IP address, got {shown(text)}")
    return text


def constraint(text: str) -> str:
    """plan --filter: one or more comma-separated constraints, parsed as the planner will."""
    from cockpit.core.constraints import EXAMPLE, parse_constraints

    if not text.strip():
        raise argparse.ArgumentTypeError(f"an empty constraint: expected {EXAMPLE}")
    try:
        parse_constraints(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text.strip()


def weights(text: str) -> str:
    """plan --weights: SCORER=WEIGHT,... for the custom strategy."""
    from cockpit.core.placement.scorers import SCORER_HELP, parse_weights

    if not text.strip() or len(text) > 4096:
        raise argparse.ArgumentTypeError(f"expected SCORER=WEIGHT,... (scorers: {SCORER_HELP}), got {shown(text)}")
    try:
        parse_weights(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def stock(text: str) -> tuple[str, str, int]:
    """serve --stock ZONE:TYPE=N: how many instances of a type a zone has left."""
    where, sep, n = text.rpartition("=")
    zone, colon, itype = where.partition(":")
    if not (sep and colon and _NAME.fullmatch(zone) and _NAME.fullmatch(itype) and _WHOLE.fullmatch(n.strip())):
        raise argparse.ArgumentTypeError(f"expected ZONE:TYPE=N, got {shown(text)}")
    amount = int(n)
    if not 0 <= amount <= STOCK_MAX:
        raise argparse.ArgumentTypeError(f"expected a stock from 0 to {STOCK_MAX}, got {shown(n)}")
    return zone, itype, amount


def fault(text: str) -> tuple[str, str, int, int]:
    """serve --fault ACTION:CODE[:STATUS[:TIMES]]: the simulated cloud answers with this error."""
    parts = text.split(":")
    bad = argparse.ArgumentTypeError(
        f"expected ACTION:CODE[:STATUS[:TIMES]] (STATUS 400 to 599, TIMES 1 to {FAULT_TIMES_MAX}), got {shown(text)}")
    if not (2 <= len(parts) <= 4 and _ACTION.fullmatch(parts[0]) and _NAME.fullmatch(parts[1])
            and all(_WHOLE.fullmatch(p) for p in parts[2:])):
        raise bad
    status = int(parts[2]) if len(parts) > 2 else 400
    times = int(parts[3]) if len(parts) > 3 else 1
    if not (400 <= status <= 599 and 1 <= times <= FAULT_TIMES_MAX):
        raise bad
    return parts[0], parts[1], status, times
