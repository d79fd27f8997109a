"""Aliyun ECS through the legacy SDK (aliyun-python-sdk-core + aliyun-python-sdk-ecs).

What we own rather than inherit from the SDK: a ClientToken on every RunInstances (it sets
none), no automatic retries (the queue counts, logs and paces its own), https unless the
endpoint is loopback, and errors as CloudError with ECS's code. Credentials come from the
environment or a file the config names; they are never stored, logged or shown.
"""

from __future__ import annotations

import configparser
import json
import os
from dataclasses import dataclass
from pathlib import Path

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkecs.request.v20140526.DeleteInstancesRequest import DeleteInstancesRequest
from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkecs.request.v20140526.RenewInstanceRequest import RenewInstanceRequest
from aliyunsdkecs.request.v20140526.RunInstancesRequest import RunInstancesRequest

from cockpit.backends.base import CloudError, Instance, RunRequest, RunResult, instance_of, renew_token

DEFAULT_ID_VAR = "ALIBABA_CLOUD_ACCESS_KEY_ID"
DEFAULT_SECRET_VAR = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"


class CredentialsError(Exception):
    """Credentials are missing or unreadable; the message names where we looked, never a value."""


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret: str

    def __repr__(self) -> str:  # a secret never reaches a log line or a traceback's locals
        return f"Credentials(access_key_id={self.access_key_id[:4]}…, secret=***)"

    __str__ = __repr__

    @classmethod
    def from_env(cls, id_var: str = DEFAULT_ID_VAR, secret_var: str = DEFAULT_SECRET_VAR) -> Credentials:
        missing = [v for v in (id_var, secret_var) if not os.environ.get(v)]
        if missing:
            raise CredentialsError(f"cloud credentials: environment variable {' and '.join(missing)} not set")
        return cls(os.environ[id_var], os.environ[secret_var])

    @classmethod
    def from_file(cls, path: str | Path, profile: str = "default") -> Credentials:
        """JSON {"access_key_id", "access_key_secret"}, or the INI the Alibaba Cloud CLI writes."""
        p = Path(path).expanduser()
        try:
            text = p.read_text()
        except OSError as e:
            raise CredentialsError(f"cloud credentials: cannot read {p}: {e.strerror}") from None
        try:
            data = json.loads(text)
        except ValueError:
            ini = configparser.ConfigParser()
            try:
                ini.read_string(text)
            except configparser.Error:
                raise CredentialsError(f"cloud credentials: {p} is neither JSON nor INI") from None
            data = dict(ini[profile]) if profile in ini else {}
        key, secret = data.get("access_key_id"), data.get("access_key_secret")
        if not key or not secret:
            raise CredentialsError(f"cloud credentials: {p} has no access_key_id and access_key_secret")
        return cls(key, secret)


def _loopback(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


class AliyunCloud:
    def __init__(
        self,
        region: str,
        credentials: Credentials,
        *,
        endpoint: str | None = None,
        protocol: str | None = None,
        timeout_s: float = 10.0,
    ):
        self.region = region
        self.endpoint = endpoint
        if protocol is None:
            protocol = "http" if endpoint and _loopback(endpoint) else "https"
        if protocol == "http" and not (endpoint and _loopback(endpoint)):
            raise ValueError("plain http is only for a loopback endpoint; use https for the real cloud")
        self.protocol = protocol
        # One client for every thread: it keeps no per-request state (each call builds its own
        # HTTP request), and building one per thread cost the first round of calls 100 ms.
        from aliyunsdkcore.client import AcsClient

        self._client = AcsClient(
            credentials.access_key_id, credentials.secret, region,
            auto_retry=False, connect_timeout=timeout_s, timeout=timeout_s,
        )

    def __repr__(self) -> str:
        return f"AliyunCloud(region={self.region!r}, endpoint={self.endpoint!r}, protocol={self.protocol!r})"

    def _do(self, request) -> dict:
        if self.endpoint:
            request.set_endpoint(self.endpoint)
        request.set_protocol_type(self.protocol)
        request.set_accept_format("json")
        try:
            return json.loads(self._client.do_action_with_exception(request))
        except ServerException as e:
            raise CloudError(e.get_error_code(), e.get_error_msg(), e.get_http_status(), e.get_request_id()) from None
        except ClientException as e:
            raise CloudError(e.get_error_code(), e.get_error_msg()) from None

    def run_instances(self, req: RunRequest) -> RunResult:
        r = RunInstancesRequest()
        r.set_ZoneId(req.zone)
        r.set_VSwitchId(req.vswitch)
        r.set_SecurityGroupId(req.security_group)
        r.set_InstanceType(req.instance_type)
        r.set_ImageId(req.image_id)
        r.set_Amount(req.amount)
        r.set_MinAmount(req.min_amount)
        r.set_ClientToken(req.client_token)
        r.set_InstanceChargeType(req.charge_type)
        if req.period is not None:
            r.set_Period(req.period)
            r.set_PeriodUnit(req.period_unit or "Month")
        body = self._do(r)
        return RunResult(list(body.get("InstanceIdSets", {}).get("InstanceIdSet", [])), body.get("RequestId", ""))

    def total_instances(self) -> int:
        """Every instance the account holds in the region, as the cloud counts them (TotalCount)."""
        r = DescribeInstancesRequest()
        r.set_PageSize(1)
        return int(self._do(r)["TotalCount"])

    def describe_instances(self, ids: list[str]) -> list[Instance]:
        out = []
        for i in range(0, len(ids), 100):
            r = DescribeInstancesRequest()
            r.set_InstanceIds(json.dumps(ids[i : i + 100]))
            r.set_PageSize(100)
            body = self._do(r)
            out += [instance_of(x) for x in body.get("Instances", {}).get("Instance", [])]
        return out

    def delete_instances(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 100):
            r = DeleteInstancesRequest()
            r.set_InstanceIds(ids[i : i + 100])
            r.set_Force(True)
            self._do(r)

    def renew_instances(self, ids: list[str], months: int, token: str) -> None:
        for iid in ids:
            r = RenewInstanceRequest()
            r.set_InstanceId(iid)
            r.set_Period(months)
            r.set_PeriodUnit("Month")
            r.set_ClientToken(renew_token(token, iid))  # a renewal repeated after a crash is not paid twice
            self._do(r)
