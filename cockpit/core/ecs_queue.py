"""How the ECS order queue decides: which zone, vSwitch and security group to try, what an
error means, when to try again, and the ClientToken that makes a repeated call harmless.

Pure: the drainer in engine/ecs.py asks, and does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    ZONE = "zone"  # stock or zone trouble: another zone
    SECURITY_GROUP = "security group"  # its instance limit: another security group
    VSWITCH = "vswitch"  # out of addresses: another vSwitch
    QUOTA = "quota"  # another option may have room
    THROTTLE = "throttle"  # wait, then the same call again
    TRANSIENT = "transient"  # the same call again, after a pause
    MONEY = "money"  # stop: a person must pay or fix the account
    FATAL = "fatal"  # stop: the request itself is wrong


_ZONE = {
    "OperationDenied.NoStock", "Zone.NotOnSale", "Zone.NotOpen", "OperationDenied.ZoneNotAllowed",
    "InvalidInstanceType.ZoneNotSupported", "InstanceType.Offline", "OperationDenied.ZoneSystemCategoryNotMatch",
    "ResourceNotAvailable",
}
_SG = {"SecurityGroupInstanceLimitExceed", "InvalidSecurityGroup.IsFull"}
_VSW = {"QuotaExceeded.PrivateIpAddress", "InvalidVSwitchId.IpNotEnough", "InvalidVSwitchId.IpInvalid"}
_MONEY = {"Account.Arrearage", "InsufficientBalance", "InvalidPayMethod", "PaymentMethodNotFound",
          "OperationDenied.AccountArrearage"}
_TRANSIENT = {"InternalError", "UnknownError", "ServiceUnavailable", "SDK.HttpError", "SDK.ServerUnreachable",
              "LastTokenProcessing"}


def classify(code: str, http_status: int | None = None) -> Kind:
    if code.startswith("Throttling"):
        return Kind.THROTTLE
    if code in _ZONE:
        return Kind.ZONE
    if code in _SG:
        return Kind.SECURITY_GROUP
    if code in _VSW:
        return Kind.VSWITCH
    if code.startswith("QuotaExceed"):
        return Kind.QUOTA
    if code in _MONEY:
        return Kind.MONEY
    if code in _TRANSIENT or (http_status is not None and http_status >= 500):
        return Kind.TRANSIENT
    return Kind.FATAL


@dataclass(frozen=True)
class Option:
    zone: str
    vswitch: str
    security_group: str

    def __str__(self) -> str:
        return f"{self.zone}/{self.vswitch}/{self.security_group}"


def options(
    zones: list[str], vswitches: list[str], security_groups: list[str], zone_of: dict[str, tuple[set, set]]
) -> list[Option]:
    """Every (zone, vSwitch, security group) the template allows, in its priority order: zones
    first, then the vSwitches and security groups that belong to each zone."""
    out = []
    for z in zones:
        sgs, vsws = zone_of[z]
        for v in (v for v in vswitches if v in vsws):
            out.extend(Option(z, v, sg) for sg in security_groups if sg in sgs)
    return out


def next_option(opts: list[Option], current: int, kind: Kind) -> int | None:
    """Where to go after `opts[current]` failed with an error of `kind`; None when nothing is left."""
    here = opts[current]
    for i in range(current + 1, len(opts)):
        o = opts[i]
        if kind is Kind.ZONE and o.zone == here.zone:
            continue  # the whole zone is out
        if kind is Kind.VSWITCH and o.vswitch == here.vswitch:
            continue
        if kind is Kind.SECURITY_GROUP and o.security_group == here.security_group:
            continue
        return i
    return None


def backoff(attempt: int, rng: random.Random, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before attempt `attempt` (1-based) again: doubling, with full jitter."""
    return rng.uniform(0, min(cap, base * 2 ** (attempt - 1))) + base / 2


def client_token(store_id: str, order_id: int, seq: int) -> str:
    """Derived from the store, the order and the call, so the same call is the same token forever."""
    return f"cockpit-{store_id}-{order_id}-{seq}"


MAX_ATTEMPTS = 6  # of one call, for transient errors and throttling
