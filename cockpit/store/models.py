"""Peewee models for platform state and its history.

Times: `*_t` columns hold platform (simulated or real) time as epoch seconds; `real_*` columns
hold the wall clock, for leases and the audit log. JSON columns hold small structured values.
"""

from __future__ import annotations

import json

import peewee as pw

from cockpit.store.errors import WAY_OUT, StoreError

proxy = pw.DatabaseProxy()


class JSONField(pw.TextField):
    def db_value(self, value):
        return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))

    def python_value(self, value):
        if value is None:
            return None
        try:
            return json.loads(value)
        except (TypeError, ValueError):
            where = f"{self.model._meta.table_name}.{self.column_name}"
            shown = str(value)[:40]
            raise StoreError(f"store: column {where} holds {shown!r}, which is not JSON: the store is damaged; "
                             f"{WAY_OUT}") from None


class Base(pw.Model):
    class Meta:
        database = proxy
        legacy_table_names = False


class Meta(Base):
    """Key/value facts about the store: schema version, the world it was seeded from."""

    key = pw.CharField(primary_key=True)
    value = pw.TextField()


class PoolRow(Base):
    name = pw.CharField(primary_key=True)
    cluster = pw.CharField()
    kind = pw.CharField()  # online | offline | shared

    class Meta:
        table_name = "pool"


class HostRow(Base):
    name = pw.CharField(unique=True)
    idc = pw.CharField(index=True)
    pool = pw.CharField(index=True)
    group = pw.CharField()
    hardware = pw.CharField()
    cores = pw.IntegerField()
    memory_gb = pw.IntegerField()
    disk_gb = pw.IntegerField()
    labels = JSONField(default=dict)
    source = pw.CharField()  # physical | vm | ecs
    zone = pw.CharField(null=True)
    charge_type = pw.CharField()
    price = pw.DoubleField(default=0.0)
    expires_t = pw.DoubleField(null=True)
    created_t = pw.DoubleField()
    released_t = pw.DoubleField(null=True, index=True)
    alive = pw.BooleanField(default=True)
    down_until_t = pw.DoubleField(null=True)
    status = pw.CharField(default="ready", index=True)  # pending | initialising | ready | failed | timed_out
    status_detail = pw.TextField(null=True)  # on failure: the message
    instance_id = pw.CharField(null=True, unique=True)
    init_task = pw.CharField(null=True)  # the initialisation task running, or the one that failed (schema 3)
    order = pw.IntegerField(null=True)  # the ECS order that created it (schema 3)
    expiry_warned = pw.BooleanField(default=False)  # the expiry warning was given (schema 3)
    address = pw.CharField(null=True)  # where the host is reached; None until the cloud says (schema 4)

    class Meta:
        table_name = "host"


class ServiceRow(Base):
    name = pw.CharField(primary_key=True)
    kind = pw.CharField()
    image = pw.CharField()
    pool = pw.CharField()
    cpu = pw.DoubleField()
    memory_gb = pw.DoubleField()
    disk_gb = pw.DoubleField()
    ports = JSONField(default=list)
    spec = JSONField(default=dict)  # traffic model and placement rules

    class Meta:
        table_name = "service"


class ContainerRow(Base):
    """A container the platform runs, or is starting or stopping (each such row holds its host's
    resources). `name` is unique: starting it again returns the same container."""

    service = pw.CharField(index=True)
    host = pw.IntegerField(index=True)  # HostRow.id; no FK so bulk moves stay cheap
    idc = pw.CharField()
    created_t = pw.DoubleField()
    task = pw.IntegerField(null=True)  # the task that created it
    ref = pw.CharField(null=True)  # the runtime's id for it (schema 2)
    name = pw.CharField(null=True, unique=True)  # schema 4
    state = pw.CharField(default="running")  # starting | running | stopping (schema 4)
    address = pw.CharField(null=True)  # where it answers (schema 4)
    ports = JSONField(default=list)  # [[container port, host port], ...] (schema 4)

    class Meta:
        table_name = "container"


class TemplateRow(Base):
    sid = pw.IntegerField(primary_key=True)
    name = pw.CharField()
    service = pw.CharField()
    spec = JSONField()

    class Meta:
        table_name = "template"


class TaskRow(Base):
    """Work handed to the engine: a scale task, an ECS order, a pool move."""

    kind = pw.CharField(index=True)
    state = pw.CharField(index=True)  # queued | running | paused | done | failed | cancelled
    spec = JSONField()
    progress = JSONField(default=dict)
    reason = pw.TextField(null=True)
    actor = pw.CharField()
    created_t = pw.DoubleField()
    updated_t = pw.DoubleField()
    real_created = pw.DoubleField()

    class Meta:
        table_name = "task"


class EventRow(Base):
    t = pw.DoubleField(index=True)
    level = pw.CharField()  # info | warn | error
    kind = pw.CharField()
    scope = pw.CharField()
    message = pw.TextField()

    class Meta:
        table_name = "event"


class AuditRow(Base):
    """An append-only log chained by hash (core/audit_chain.py): `hash` covers `prev_hash` (the
    entry before's hash) and every other column. Appended only through engine/journal.audit (the v8
    upgrade chains the entries older stores hold: store/db.chain_audit)."""

    real_t = pw.DoubleField(index=True)
    platform_t = pw.DoubleField(null=True)
    user = pw.CharField()
    role = pw.CharField()  # viewer | operator | admin, or engine for the engine's own changes
    host = pw.CharField(default="")  # where it was asked ("" in entries older than schema 8)
    action = pw.CharField()
    target = pw.CharField()
    details = JSONField(default=dict)
    outcome = pw.CharField()  # done | refused | failed; the engine's: queued, started, ...
    prev_hash = pw.CharField(max_length=64, default="")
    hash = pw.CharField(max_length=64, default="")
    # PostgreSQL: the database role that wrote the entry, which a trigger holds to session_user
    # (None on SQLite, and in entries older than schema 9). The hash covers it when it is set.
    db_user = pw.CharField(null=True)

    class Meta:
        table_name = "audit"
        # Each entry follows exactly one: two writers that read the same head cannot both land.
        indexes = ((("prev_hash",), True),)


class _ScopeStats(Base):
    """The numbers of one dashboard scope ("idc" or "idc/pool") at one platform instant."""

    t = pw.DoubleField()
    hosts_alive = pw.IntegerField()
    hosts_total = pw.IntegerField()
    containers = pw.IntegerField()
    cpu_pct = pw.DoubleField()
    alloc_pct = pw.DoubleField()
    qps = pw.DoubleField()


class MetricRow(_ScopeStats):
    """History: a sample of every scope each platform minute."""

    scope = pw.CharField()

    class Meta:
        table_name = "metric"
        indexes = ((("scope", "t"), True), (("t",), False))


class LiveRow(_ScopeStats):
    """The latest value of each scope; rewritten every tick."""

    scope = pw.CharField(primary_key=True)

    class Meta:
        table_name = "live"


class ClockRow(Base):
    """The platform clock, so every process attached to this store shows the same time."""

    id = pw.IntegerField(primary_key=True, default=1)
    t = pw.DoubleField()
    speed = pw.DoubleField(default=1.0)
    paused = pw.BooleanField(default=False)
    tick = pw.IntegerField(default=0)
    real_t = pw.DoubleField()  # wall clock of the last tick: a stale tick means no engine

    class Meta:
        table_name = "clock"


class LeaseRow(Base):
    """Who runs the engine: one holder per name, kept alive by heartbeats."""

    name = pw.CharField(primary_key=True)
    holder = pw.CharField()
    host = pw.CharField()
    pid = pw.IntegerField()
    acquired_real = pw.DoubleField()
    heartbeat_real = pw.DoubleField()
    expires_real = pw.DoubleField()

    class Meta:
        table_name = "lease"


class EcsOrderRow(Base):
    """A request for N cloud hosts, drained by the engine a batch at a time."""

    sid = pw.IntegerField()  # the template
    service = pw.CharField()
    idc = pw.CharField()
    pool = pw.CharField()  # where the new hosts go
    count = pw.IntegerField()
    created = pw.IntegerField(default=0)
    instance_type = pw.CharField()
    image_id = pw.CharField()
    hardware = pw.CharField()
    charge_type = pw.CharField()  # payg | monthly | yearly
    price = pw.DoubleField()
    labels = JSONField(default=dict)
    options = JSONField()  # [[zone, vswitch, security group], ...] in priority order
    option = pw.IntegerField(default=0)  # the one in use
    fallbacks = JSONField(default=list)  # [{from, to, code, message, real_t}]
    state = pw.CharField(index=True)  # queued | running | paused | done | failed | cancelled
    reason = pw.TextField(null=True)
    next_seq = pw.IntegerField(default=1)
    actor = pw.CharField()
    created_t = pw.DoubleField()  # platform time
    real_created = pw.DoubleField()
    real_finished = pw.DoubleField(null=True)

    class Meta:
        table_name = "ecs_order"


class EcsCallRow(Base):
    """One RunInstances call: written before it is made, so a restart re-makes it with the same token."""

    order = pw.IntegerField(index=True)
    seq = pw.IntegerField()
    token = pw.CharField(unique=True)
    amount = pw.IntegerField()
    min_amount = pw.IntegerField()
    option = pw.IntegerField()
    zone = pw.CharField()
    vswitch = pw.CharField()
    security_group = pw.CharField()
    state = pw.CharField(index=True)  # in_flight | retry | ok | failed
    attempts = pw.IntegerField(default=1)
    not_before_real = pw.DoubleField(default=0.0)
    instance_ids = JSONField(default=list)
    error_code = pw.CharField(null=True)
    error_message = pw.TextField(null=True)
    real_started = pw.DoubleField()
    real_finished = pw.DoubleField(null=True)

    class Meta:
        table_name = "ecs_call"


class PoolMoveRow(Base):
    """A host moved from one pool to another: by whom, why, and when."""

    host = pw.CharField(index=True)
    from_pool = pw.CharField()
    to_pool = pw.CharField()
    t = pw.DoubleField()
    reason = pw.CharField()  # "move", "shrink", "borrow", or a swap's name
    actor = pw.CharField()
    containers_moved = pw.IntegerField(default=0)
    task = pw.IntegerField(null=True)

    class Meta:
        table_name = "pool_move"


class CallRow(Base):
    """A call to the outside (a container engine, the cloud): written before it is made, answered
    after, so an engine that dies between the two makes it again with the same key (schema 4)."""

    task = pw.IntegerField(null=True, index=True)
    stage = pw.IntegerField(default=0)  # a task's calls run stage by stage
    after_ok = pw.BooleanField(default=True)  # cancelled when a call of an earlier stage failed
    kind = pw.CharField()  # container.start | container.remove | instance.delete | instance.renew
    key = pw.CharField(unique=True)  # what makes a repeat safe: a container name, a client token
    target = pw.CharField()  # a host, or instances, for the screens
    request = JSONField()
    state = pw.CharField(index=True)  # pending | done | failed | cancelled
    result = JSONField(null=True)
    error = pw.TextField(null=True)
    attempts = pw.IntegerField(default=0)
    not_before_real = pw.DoubleField(default=0.0)
    real_created = pw.DoubleField()
    real_done = pw.DoubleField(null=True)

    class Meta:
        table_name = "call"


class RegistryImageRow(Base):
    """What a registry holds, as Cockpit last saw it: a tag and its manifest's digest (schema 5)."""

    registry = pw.CharField()
    repo = pw.CharField()
    tag = pw.CharField()
    digest = pw.CharField()
    since_t = pw.DoubleField()  # platform time the tag got this digest here (the lag counts from it)
    seen_real = pw.DoubleField()

    class Meta:
        table_name = "registry_image"
        indexes = ((("registry", "repo", "tag"), True),)


class ManifestRow(Base):
    """A manifest's blobs, so an image's layers show without asking its registry (schema 5)."""

    digest = pw.CharField(primary_key=True)
    media_type = pw.CharField()
    body = pw.TextField()  # the manifest as the registry holds it (its digest is of these bytes)
    blobs = JSONField(default=list)  # [[digest, size], ...]: config first, then the layers
    children = JSONField(default=list)  # an index: the digests of its manifests

    class Meta:
        table_name = "manifest"


class ReplicationRow(Base):
    """One execution of a replication policy (schema 5)."""

    policy = pw.CharField(index=True)
    trigger = pw.CharField()  # manual | cron | event
    scope = JSONField(null=True)  # [[repo, tag], ...] when an event names the images; else every image
    state = pw.CharField(index=True)  # pending | running | succeeded | failed | stopped
    actor = pw.CharField()
    stop_requested = pw.BooleanField(default=False)
    tasks_total = pw.IntegerField(default=0)
    tasks_done = pw.IntegerField(default=0)
    tasks_failed = pw.IntegerField(default=0)
    tasks_conflict = pw.IntegerField(default=0)
    bytes_needed = pw.BigIntegerField(default=0)
    bytes_moved = pw.BigIntegerField(default=0)
    error = pw.TextField(null=True)
    created_t = pw.DoubleField()
    real_created = pw.DoubleField()
    real_started = pw.DoubleField(null=True)
    real_finished = pw.DoubleField(null=True)

    class Meta:
        table_name = "replication"


class ReplicationTaskRow(Base):
    """One image to one destination within an execution (schema 5)."""

    execution = pw.IntegerField(index=True)
    repo = pw.CharField()
    tag = pw.CharField()
    source = pw.CharField()
    destination = pw.CharField()
    digest = pw.CharField()  # the source's ("" for a deletion)
    found = pw.CharField(null=True)  # what the destination held when planned
    action = pw.CharField()  # copy | overwrite | delete | conflict
    state = pw.CharField(index=True)  # pending | running | succeeded | failed | stopped | conflict
    bytes_needed = pw.BigIntegerField(default=0)
    bytes_moved = pw.BigIntegerField(default=0)
    error = pw.TextField(null=True)
    attempts = pw.IntegerField(default=0)
    not_before_real = pw.DoubleField(default=0.0)
    real_started = pw.DoubleField(null=True)
    real_finished = pw.DoubleField(null=True)

    class Meta:
        table_name = "replication_task"


class RegistryHealthRow(Base):
    """Each registry's last answer to a ping (schema 5)."""

    registry = pw.CharField(primary_key=True)
    ok = pw.BooleanField()
    error = pw.TextField(null=True)
    latency_ms = pw.DoubleField(null=True)
    checked_real = pw.DoubleField()

    class Meta:
        table_name = "registry_health"


class ScaleRuleRow(Base):
    """An autoscaling rule as data (schema 6): seeded from the world, then edited in `:scale`; the
    engine reads them at every evaluation, so an edit takes effect without a restart."""

    name = pw.CharField(primary_key=True)
    spec = JSONField()  # the rule's mapping, as in the world file
    position = pw.IntegerField(default=0)
    paused = pw.BooleanField(default=False)
    updated_by = pw.CharField(null=True)
    updated_real = pw.DoubleField(null=True)

    class Meta:
        table_name = "scale_rule"


class ScaleMemoryRow(Base):
    """What the rules remember about a service between evaluations (core.autoscale.memory)."""

    service = pw.CharField(primary_key=True)
    memory = JSONField()

    class Meta:
        table_name = "scale_memory"


class ScaleDecisionRow(Base):
    """A change the rules decided, explained, and the task that carries it out."""

    t = pw.DoubleField(index=True)
    service = pw.CharField(index=True)
    pool = pw.CharField()
    current = pw.IntegerField()
    desired = pw.IntegerField()
    rule = pw.CharField(null=True)
    formula = pw.TextField()
    note = pw.TextField(default="")
    inputs = JSONField(default=dict)
    task = pw.IntegerField(null=True)
    outcome = pw.TextField(default="")  # what was asked of the platform

    class Meta:
        table_name = "scale_decision"


class ServiceMetricRow(Base):
    """Each service at each evaluation: what `predict` looks back on and `:scale` charts."""

    service = pw.CharField()
    t = pw.DoubleField()
    qps = pw.DoubleField()
    cpu_pct = pw.DoubleField()
    running = pw.IntegerField()
    starting = pw.IntegerField()
    desired = pw.IntegerField()

    class Meta:
        table_name = "service_metric"
        indexes = ((("service", "t"), True), (("t",), False))


class FlowItemRow(Base):
    """One host or container of an expansion flow (a task of kind `expand` or `shrink`): the step
    it is at, its state and its own log, so a flow shows and resumes per host and per container."""

    task = pw.IntegerField(index=True)
    kind = pw.CharField()  # host | container
    name = pw.CharField()
    host = pw.CharField(null=True)  # a container's host
    step = pw.CharField()
    state = pw.CharField(index=True)  # pending | running | done | failed | skipped
    attempts = pw.IntegerField(default=0)
    not_before_real = pw.DoubleField(default=0.0)
    request = JSONField(default=dict)  # what the step's call needs (a container's spec)
    result = JSONField(default=dict)  # what it answered (a container's address and ports)
    detail = pw.TextField(null=True)  # the last error, in words
    log = JSONField(default=list)  # [[real time, step, text], ...], the last LOG_KEEP lines
    updated_real = pw.DoubleField()

    class Meta:
        table_name = "flow_item"
        indexes = ((("task", "kind", "name"), True),)


class RequestRow(Base):
    """An action asked of the engine by a Cockpit that may not write the store itself (PostgreSQL
    with roles enforced: engine/requests.py). The database fills `requester` with the session's
    role (a trigger), so nobody can ask as someone else; the engine checks that person's role."""

    requester = pw.CharField(null=True)
    host = pw.CharField(default="")  # the jump host it was asked from
    method = pw.CharField()  # the facade's action method
    args = JSONField(default=dict)
    role_cap = pw.CharField()  # the role the asking Cockpit runs with (--role only lowers the mapping's)
    readonly = pw.BooleanField(default=False)
    wait = pw.BooleanField(default=True)  # False: nobody waits for the answer (a refusal to record)
    state = pw.CharField(default="queued", index=True)  # queued | done | refused | failed | withdrawn | expired
    message = pw.TextField(null=True)
    task = pw.IntegerField(null=True)  # the task or flow the action queued
    created_real = pw.DoubleField()  # the database's clock (a trigger sets it on PostgreSQL)
    answered_real = pw.DoubleField(null=True)

    class Meta:
        table_name = "action_request"


class BackendRow(Base):
    """How each backend answered the active engine last (engine/health.py; schema 9)."""

    kind = pw.CharField()  # store | cloud | engine | discovery | registry
    name = pw.CharField()
    ok = pw.BooleanField()
    ok_real = pw.DoubleField(null=True)  # its last good answer
    since_real = pw.DoubleField(null=True)  # failing since
    error = pw.TextField(null=True)
    checked_real = pw.DoubleField()

    class Meta:
        table_name = "backend"
        indexes = ((("kind", "name"), True),)


ALL_MODELS = [
    Meta,
    PoolRow,
    HostRow,
    ServiceRow,
    ContainerRow,
    TemplateRow,
    TaskRow,
    EventRow,
    AuditRow,
    MetricRow,
    LiveRow,
    ClockRow,
    LeaseRow,
    EcsOrderRow,
    EcsCallRow,
    PoolMoveRow,
    CallRow,
    RegistryImageRow,
    ManifestRow,
    ReplicationRow,
    ReplicationTaskRow,
    RegistryHealthRow,
    ScaleRuleRow,
    ScaleMemoryRow,
    ScaleDecisionRow,
    ServiceMetricRow,
    FlowItemRow,
    RequestRow,
    BackendRow,
]
