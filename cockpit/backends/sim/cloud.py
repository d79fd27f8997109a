"""The simulated cloud: an ECS region with zones that run out of stock, a per-account limit on
calls in flight, latency, throttling, ClientToken idempotency, and ECS's error codes and
response shapes (see ../shared/reference/aliyun-ecs.md).

`SimCloudModel.handle` takes the parameters as they arrive on the wire (strings) and returns
(HTTP status, JSON body). Both faces use it: `SimCloud`, the in-process twin of the Aliyun
backend, and `cloud_http`, which serves ECS's signed RPC protocol on loopback so the real SDK
can be tested end to end.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field

from cockpit.backends.base import CloudError, Instance, RunRequest, RunResult, instance_of, renew_token
from cockpit.domain import World

PLENTY = 100_000  # stock of an instance type a zone does not limit
VERSION = "2014-05-26"


@dataclass
class Fault:
    """An error the simulated cloud returns on purpose, `times` times: for tests of the queue."""

    action: str
    code: str
    http_status: int = 400
    times: int = 1
    message: str = "injected by the simulated cloud"


@dataclass
class ZoneSpec:
    security_groups: set[str]
    vswitches: set[str]
    stock: dict[str, int] = field(default_factory=dict)  # instance type -> left
    on_sale: bool = True


@dataclass
class SimInstance:
    id: str
    zone: str
    instance_type: str
    vswitch: str
    security_group: str
    charge_type: str
    created_real: float
    status: str = "Running"
    renewed_months: int = 0
    private_ip: str | None = None


class _Reject(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


class SimCloudModel:
    def __init__(
        self,
        region: str,
        zones: dict[str, ZoneSpec],
        *,
        latency_s: float = 0.0,
        max_in_flight: int = 20,
        rate_per_s: float | None = None,
        faults: list[Fault] | None = None,
        existing: list[SimInstance] | None = None,
        seed: int = 0,
    ):
        self.region = region
        self.zones = zones
        self.latency_s = latency_s
        self.max_in_flight = max_in_flight
        self.rate_per_s = rate_per_s
        self.faults = list(faults or [])
        self.instances: dict[str, SimInstance] = {i.id: i for i in existing or []}
        self.calls: dict[str, int] = {}  # action -> calls answered, for tests and benchmarks
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._recent: dict[str, list[float]] = {}
        self._tokens: dict[tuple[str, str], tuple[tuple, list[str]]] = {}
        self._pending: dict[tuple[str, str], threading.Event] = {}
        self._ids = itertools.count(1)
        self._ips = itertools.count(1)
        self._renewals: dict[tuple[str, str], tuple] = {}  # (account, token) -> (instance, period)
        self._seed = seed

    @classmethod
    def from_world(cls, world: World, **kw) -> SimCloudModel:
        """The world's cloud IDC, with the ECS hosts the world says already run there."""
        from cockpit.core.addressing import host_addresses
        from cockpit.core.bootstrap import hosts_from_world, instance_id

        cloud = next((i for i in world.idcs if i.kind == "cloud"), None)
        if cloud is None:
            raise ValueError(f"world {world.name!r} has no cloud IDC")
        zones = {z.name: ZoneSpec(set(z.security_groups), set(z.vswitches), dict(z.stock)) for z in cloud.zones}
        hosts = hosts_from_world(world)
        address = {h.name: a for h, a in zip(hosts, host_addresses(h.idc for h in hosts))}
        existing = []
        for g in world.host_groups:
            if g.source == "ecs":
                z = next(x for x in cloud.zones if x.name == g.zone)
                for i in range(1, g.count + 1):
                    name = f"{g.name}-{i:04d}"
                    charge = "PostPaid" if g.charge.type == "payg" else "PrePaid"
                    existing.append(SimInstance(instance_id(world.seed, name), z.name, g.hardware, z.vswitches[0],
                                                z.security_groups[0], charge, 0.0, private_ip=address[name]))
        return cls(cloud.region or "cn-beijing", zones, existing=existing, seed=world.seed, **kw)

    # --- the API ------------------------------------------------------------------------

    def handle(self, account: str, params: dict[str, str]) -> tuple[int, dict]:
        request_id = str(uuid.uuid4()).upper()
        action = params.get("Action", "")
        try:
            if params.get("Version", VERSION) != VERSION:
                raise _Reject(400, "InvalidVersion", f"Specified parameter Version is not valid: {params.get('Version')}")
            handler = {
                "RunInstances": self._run,
                "DescribeInstances": self._describe,
                "DeleteInstances": self._delete,
                "RenewInstance": self._renew,
            }.get(action)
            if handler is None:
                raise _Reject(400, "InvalidAction.NotFound", f"Specified api {action!r} is not found")
            self._fault(action)
            body = handler(account, params)
            with self._lock:
                self.calls[action] = self.calls.get(action, 0) + 1
            body["RequestId"] = request_id
            return 200, body
        except _Reject as r:
            return r.status, {"Code": r.code, "Message": r.message, "RequestId": request_id,
                              "HostId": f"ecs.{self.region}.aliyuncs.com"}

    def _fault(self, action: str) -> None:
        with self._lock:
            for f in self.faults:
                if f.action == action and f.times > 0:
                    f.times -= 1
                    raise _Reject(f.http_status, f.code, f.message)

    def _admit(self, account: str) -> None:
        with self._lock:
            if self._in_flight.get(account, 0) >= self.max_in_flight:
                raise _Reject(400, "Throttling.User", "Request was denied due to user flow control.")
            if self.rate_per_s is not None:
                now = time.monotonic()
                recent = [t for t in self._recent.get(account, []) if now - t < 1.0]
                if len(recent) >= self.rate_per_s:
                    self._recent[account] = recent
                    raise _Reject(400, "Throttling", "Request was denied due to request throttling.")
                recent.append(now)
                self._recent[account] = recent
            self._in_flight[account] = self._in_flight.get(account, 0) + 1

    def _release(self, account: str) -> None:
        with self._lock:
            self._in_flight[account] -= 1

    def _run(self, account: str, p: dict[str, str]) -> dict:
        region = p.get("RegionId", "")
        if region != self.region:
            raise _Reject(404, "InvalidRegionId.NotFound", f"The specified region {region!r} does not exist.")
        zone_id, vsw, sg = p.get("ZoneId", ""), p.get("VSwitchId", ""), p.get("SecurityGroupId", "")
        zone = self.zones.get(zone_id)
        if zone is None:
            raise _Reject(404, "InvalidZoneId.NotFound", f"The specified zone {zone_id!r} does not exist.")
        if vsw not in zone.vswitches:
            raise _Reject(404, "InvalidVSwitchId.NotFound", f"The specified vSwitch {vsw!r} does not exist in {zone_id}.")
        if sg not in zone.security_groups:
            raise _Reject(404, "InvalidSecurityGroupId.NotFound", f"The specified security group {sg!r} does not exist.")
        amount = _int(p, "Amount", 1)
        min_amount = _int(p, "MinAmount", amount)
        if not 1 <= amount <= 100 or not 1 <= min_amount <= amount:
            raise _Reject(400, "InvalidParameter.Amount", "Amount must be 1-100 and MinAmount 1-Amount.")
        itype = p.get("InstanceType", "")
        charge = p.get("InstanceChargeType", "PostPaid")
        token = p.get("ClientToken")
        if token is not None and len(token) > 64:
            raise _Reject(400, "InvalidClientToken.Malformed", "ClientToken must be at most 64 characters.")
        wanted = (zone_id, vsw, sg, itype, p.get("ImageId"), amount, min_amount, charge, p.get("Period"))

        key = (account, token) if token else None
        if key is not None:
            first = self._token_first(key)
            if first is not None:  # a repeat: the first call's answer, nothing new
                params, ids = first
                if params != wanted:
                    raise _Reject(400, "IdempotentParameterMismatch",
                                  "The same ClientToken was used with different parameters.")
                return {"InstanceIdSets": {"InstanceIdSet": list(ids)}, "TradePrice": 0.0}
        try:
            self._admit(account)
        except _Reject:
            if key is not None:
                self._token_done(key)
            raise
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            with self._lock:
                if not zone.on_sale:
                    raise _Reject(403, "Zone.NotOnSale", f"The specified zone {zone_id} is not on sale.")
                left = zone.stock.get(itype, PLENTY)
                if left < min_amount:
                    raise _Reject(403, "OperationDenied.NoStock",
                                  "The resource is out of stock in the specified zone. Please try other types, "
                                  "or choose other regions and zones.")
                n = min(amount, left)
                if itype in zone.stock:
                    zone.stock[itype] = left - n
                ids = []
                for _ in range(n):
                    iid = "i-" + hashlib.sha256(f"{self._seed}:{account}:{next(self._ids)}".encode()).hexdigest()[:20]
                    self.instances[iid] = SimInstance(iid, zone_id, itype, vsw, sg, charge, time.time(),
                                                      private_ip=self._next_ip())
                    ids.append(iid)
                if key is not None:
                    self._tokens[key] = (wanted, ids)
        except _Reject:
            if key is not None:
                self._token_done(key)
            raise
        finally:
            self._release(account)
        if key is not None:
            self._token_done(key)
        return {"InstanceIdSets": {"InstanceIdSet": ids}, "TradePrice": round(0.5 * n, 2)}

    def _next_ip(self) -> str:
        """A vSwitch address of the region's VPC (172.16.0.0/12), in order."""
        k = next(self._ips)
        return f"172.{16 + k // 65536 % 16}.{k // 256 % 256}.{k % 256}"

    def _token_first(self, key) -> tuple | None:
        """The first call's answer for this token; waits while that call is still being made."""
        while True:
            with self._lock:
                if key in self._tokens:
                    return self._tokens[key]
                event = self._pending.get(key)
                if event is None:
                    self._pending[key] = threading.Event()
                    return None
            event.wait()

    def _token_done(self, key) -> None:
        with self._lock:
            event = self._pending.pop(key, None)
        if event is not None:
            event.set()

    def _describe(self, account: str, p: dict[str, str]) -> dict:
        try:
            ids = json.loads(p["InstanceIds"]) if "InstanceIds" in p else None
        except ValueError:
            raise _Reject(400, "InvalidInstanceIds.Malformed", "InstanceIds must be a JSON array.") from None
        size = min(_int(p, "PageSize", 10), 100)
        page = max(_int(p, "PageNumber", 1), 1)
        with self._lock:
            found = [i for i in self.instances.values() if ids is None or i.id in ids]
        chunk = found[(page - 1) * size : page * size]
        return {
            "TotalCount": len(found),
            "PageNumber": page,
            "PageSize": size,
            "Instances": {"Instance": [
                {"InstanceId": i.id, "ZoneId": i.zone, "InstanceType": i.instance_type, "Status": i.status,
                 "VpcAttributes": {"VSwitchId": i.vswitch,
                                   "PrivateIpAddress": {"IpAddress": [i.private_ip] if i.private_ip else []}},
                 "SecurityGroupIds": {"SecurityGroupId": [i.security_group]},
                 "InstanceChargeType": i.charge_type}
                for i in chunk
            ]},
        }

    def _delete(self, account: str, p: dict[str, str]) -> dict:
        ids = [v for k, v in sorted(p.items()) if k.startswith("InstanceId.")]
        if not ids:
            raise _Reject(400, "MissingParameter.InstanceIds", "InstanceId.N is required.")
        with self._lock:
            missing = [i for i in ids if i not in self.instances]
            if missing:
                raise _Reject(404, "InvalidInstanceId.NotFound", f"The specified instance {missing[0]} does not exist.")
            for i in ids:
                del self.instances[i]
        return {}


    def _renew(self, account: str, p: dict[str, str]) -> dict:
        iid = p.get("InstanceId", "")
        period = _int(p, "Period", 1)
        token = p.get("ClientToken")
        with self._lock:
            inst = self.instances.get(iid)
            if inst is None:
                raise _Reject(404, "InvalidInstanceId.NotFound", f"The specified instance {iid} does not exist.")
            if inst.charge_type != "PrePaid":
                raise _Reject(403, "InstanceChargeType.NotSupported", "Only prepaid instances can be renewed.")
            if token:
                first = self._renewals.get((account, token))
                if first is not None:  # a repeat: renewed already, nothing more to pay
                    if first != (iid, period):
                        raise _Reject(400, "IdempotentParameterMismatch",
                                      "The same ClientToken was used with different parameters.")
                    return {}
                self._renewals[(account, token)] = (iid, period)
            inst.renewed_months += period
        return {}


def _int(p: dict[str, str], key: str, default: int) -> int:
    try:
        return int(p.get(key, default))
    except ValueError:
        raise _Reject(400, f"InvalidParameter.{key}", f"{key} must be a number.") from None


def run_params(r: RunRequest) -> dict[str, str]:
    """A RunRequest as the SDK puts it on the wire."""
    p = {
        "Action": "RunInstances", "Version": VERSION, "RegionId": r.region, "ZoneId": r.zone,
        "VSwitchId": r.vswitch, "SecurityGroupId": r.security_group, "InstanceType": r.instance_type,
        "ImageId": r.image_id, "Amount": str(r.amount), "MinAmount": str(r.min_amount),
        "ClientToken": r.client_token, "InstanceChargeType": r.charge_type,
    }
    if r.period is not None:
        p["Period"] = str(r.period)
        p["PeriodUnit"] = r.period_unit or "Month"
    return p


def answer(status: int, body: dict) -> dict:
    """The body of a good answer; a CloudError for a bad one, as the SDK raises."""
    if status != 200:
        raise CloudError(body.get("Code", "UnknownError"), body.get("Message", ""), status, body.get("RequestId"))
    return body


class SimCloud:
    """The in-process twin of backends.aliyun.AliyunCloud: same Protocol, same model behind it."""

    def __init__(self, model: SimCloudModel, account: str = "sim-account"):
        self.model = model
        self.account = account

    def run_instances(self, req: RunRequest) -> RunResult:
        body = answer(*self.model.handle(self.account, run_params(req)))
        return RunResult(list(body["InstanceIdSets"]["InstanceIdSet"]), body["RequestId"])

    def describe_instances(self, ids: list[str]) -> list[Instance]:
        out = []
        for i in range(0, len(ids), 100):
            chunk = ids[i : i + 100]
            body = answer(*self.model.handle(self.account, {
                "Action": "DescribeInstances", "Version": VERSION, "RegionId": self.model.region,
                "InstanceIds": json.dumps(chunk), "PageSize": "100"}))
            out += [instance_of(x) for x in body["Instances"]["Instance"]]
        return out

    def delete_instances(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 100):
            params = {"Action": "DeleteInstances", "Version": VERSION, "RegionId": self.model.region, "Force": "true"}
            params.update({f"InstanceId.{k + 1}": v for k, v in enumerate(ids[i : i + 100])})
            answer(*self.model.handle(self.account, params))

    def renew_instances(self, ids: list[str], months: int, token: str) -> None:
        for iid in ids:
            answer(*self.model.handle(self.account, {"Action": "RenewInstance", "Version": VERSION,
                                                     "InstanceId": iid, "Period": str(months), "PeriodUnit": "Month",
                                                     "ClientToken": renew_token(token, iid)}))
