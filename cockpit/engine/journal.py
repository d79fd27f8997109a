"""The platform's event log and the audit log: append-only rows, written by the engine and the facade."""

from __future__ import annotations

import time

from cockpit.store.models import AuditRow, EventRow


def event(t: float, level: str, kind: str, scope: str, message: str) -> None:
    EventRow.insert(t=t, level=level, kind=kind, scope=scope, message=message).execute()


def audit(
    *, user: str, role: str, action: str, target: str, details: dict, outcome: str, platform_t: float | None
) -> None:
    AuditRow.insert(
        real_t=time.time(),
        platform_t=platform_t,
        user=user,
        role=role,
        action=action,
        target=target if len(target) <= 200 else target[:199] + "…",  # a column of 255 on PostgreSQL
        details=details,
        outcome=outcome,
    ).execute()
