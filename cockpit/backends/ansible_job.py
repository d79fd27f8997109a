"""Runs one initialisation playbook with ansible-runner and prints per-host events as JSON lines.

Started by backends/ansible.py as a child process with a scrubbed environment: ansible-runner
copies its process environment into its artifacts, and cloud keys must not land there.
Input (stdin): {"private_data_dir", "playbook", "inventory", "extravars", "forks", "timeout"}, and
"check": true for Ansible's check mode: it changes nothing, and each task's result (why it was
skipped, what it would change) is in the artifacts' stdout.
"""

from __future__ import annotations

import json
import sys


def _say(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _message(res: dict) -> str:
    for item in res.get("results") or []:  # a loop: the first item that failed says why
        if isinstance(item, dict) and item.get("failed"):
            return _message(item)
    msg = res.get("msg") or res.get("stderr") or res.get("module_stderr") or ""
    return str(msg).strip().splitlines()[-1][:500] if str(msg).strip() else "failed"


def main() -> int:
    import ansible_runner

    job = json.load(sys.stdin)
    failed: set[str] = set()

    def on_event(ev: dict) -> bool:
        data = ev.get("event_data") or {}
        host = data.get("host")
        kind = ev.get("event")
        if not host:
            return True
        if kind == "runner_on_start":
            _say(host=host, status="initialising", task=data.get("task"))
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            failed.add(host)
            _say(host=host, status="failed", task=data.get("task"), message=_message(data.get("res") or {}))
        elif kind == "runner_on_unreachable":
            failed.add(host)
            _say(host=host, status="failed", task=data.get("task"), message="unreachable: " + _message(data.get("res") or {}))
        return True

    r = ansible_runner.run(
        private_data_dir=job["private_data_dir"],
        playbook=job["playbook"],
        inventory=job["inventory"],
        extravars=job.get("extravars") or {},
        forks=job.get("forks", 10),
        timeout=job.get("timeout"),
        quiet=True,
        event_handler=on_event,
        rotate_artifacts=20,
        cmdline="--check -v" if job.get("check") else None,
    )
    if r.rc == 127:
        _say(host="*", status="failed", task="ansible-playbook", message="ansible-playbook not found on PATH")
        return 2
    stats = r.stats or {}
    done = set(stats.get("ok", {})) | set(stats.get("changed", {})) | set(stats.get("skipped", {}))
    for host in sorted(done - failed - set(stats.get("failures", {})) - set(stats.get("dark", {}))):
        _say(host=host, status="ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
