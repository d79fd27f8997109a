"""Autoscaling rules and limits in a world file, `cockpit simulate`, and traffic trace files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cockpit import world as world_mod
from cockpit.cli import main
from cockpit.core.autoscale.simulate import simulate
from cockpit.core.autoscale.trace import demo_trace
from cockpit.world import WorldError

SMALL = Path(__file__).parent / "data" / "small-world.yaml"


def with_rules(rules: str, scaling: str = "") -> str:
    text = SMALL.read_text()
    return text[:text.index("autoscaling:")] + "autoscaling:\n" + rules + "\n" + scaling


def problems(rules: str, scaling: str = "") -> list[str]:
    with pytest.raises(WorldError) as e:
        world_mod.loads(with_rules(rules, scaling), "w.yaml")
    return str(e.value).splitlines()


@pytest.mark.parametrize("rule, message", [
    ("{name: r, kind: target, services: [feed]}", "autoscaling[0].target_pct: a target rule needs target_pct"),
    ("{name: r, kind: cpu, services: [feed]}", "autoscaling[0].threshold_pct: a cpu rule needs threshold_pct"),
    ("{name: r, kind: schedule, services: [feed], at: ['12:30']}",
     "autoscaling[0]: a schedule rule needs min_count, factor or both"),
    ("{name: r, kind: cpu, services: [feed], threshold_pct: 50, target_pct: 40}",
     "autoscaling[0].target_pct: a cpu rule does not use target_pct (it uses: factor, threshold_pct)"),
    ("{name: r, kind: target, services: [nope], target_pct: 40}", "autoscaling[0].services[0]: no service named 'nope'"),
    ("{name: r, kind: target, services: [feed], target_pct: 140}", "autoscaling[0].target_pct"),
    ("{name: r, kind: target, services: [feed], target_pct: 40, up: [{kind: pods, value: 0, period_s: 15}]}",
     "autoscaling[0].up[0].value"),
    ("{name: r, kind: schedule, services: [feed], at: ['12:30'], factor: 2, lead_min: 600, hold_min: 900}",
     "autoscaling[0].hold_min: a schedule's window (lead_min + hold_min) may last at most a day"),
    ("{name: r, kind: fancy, services: [feed]}", "autoscaling[0].kind"),
])
def test_a_bad_rule_is_named_with_its_line_and_what_it_needs(rule, message):
    got = problems(f"  - {rule}")
    assert any(message in line for line in got), got
    assert all(line.startswith("w.yaml:") for line in got)


def test_bad_pool_limits_are_named():
    got = problems("  - {name: r, kind: target, services: [feed], target_pct: 40}",
                   "scaling:\n  pools:\n    - {pool: nope}\n    - {pool: web, min: 9, max: 3}\n    - {pool: web}\n")
    assert any("scaling.pools[0].pool: no pool named 'nope'" in g for g in got), got
    assert any("scaling.pools[1].min: min 9 is above max 3" in g for g in got), got
    assert any("scaling.pools[2].pool: limits for pool 'web' given twice" in g for g in got), got


def test_rules_and_limits_are_read_with_the_hpa_defaults():
    w = world_mod.loads(with_rules("  - {name: r, kind: target, services: [feed], target_pct: 40}",
                                   "scaling:\n  interval_s: 30\n  pools: [{pool: web, min: 2, max: 90}]\n"))
    (r,) = w.autoscaling
    assert (r.tolerance, r.down_window_s, r.up_window_s) == (0.1, 300, 0)
    assert [(p.kind, p.value, p.period_s) for p in r.up] == [("percent", 100, 15), ("pods", 4, 15)]
    assert w.scaling.interval_s == 30 and w.scaling.limits("web").max == 90
    assert w.scaling.limits("shared").max == 1_000_000  # a pool without limits


def test_the_same_trace_gives_the_same_day_and_static_peak_never_scales():
    w = world_mod.load(world_mod.DEMO_WORLD)
    a, b = simulate(w, demo_trace(w, 5), "rules"), simulate(w, demo_trace(w, 5), "rules")
    assert a.summary() == b.summary() and [d.as_json() for d in a.decisions] == [d.as_json() for d in b.decisions]
    s = simulate(w, demo_trace(w, 5), "static-peak")
    assert s.actions == 0 and s.decisions == []


def test_simulate_prints_each_policy_and_explains_decisions(capsys):
    assert main(["simulate", "--seed", "2", "--policy", "rules", "--policy", "hpa", "--json", "--decisions"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["policies"]) == {"rules", "hpa"} and "x3" in out["trace"]
    d = out["policies"]["rules"]["decisions"][0]
    assert {"t", "service", "current", "desired", "rule", "formula", "inputs"} <= set(d)
    assert out["policies"]["hpa"]["violation_minutes"] >= out["policies"]["rules"]["violation_minutes"]


def test_a_trace_file_replays_and_a_bad_one_is_named_line_by_line(tmp_path, capsys):
    day = [1000.0] * 1440
    day[600:660] = [9000.0] * 60  # ten o'clock: a surge the HPA must answer
    good = tmp_path / "t.yaml"
    good.write_text(json.dumps({"start": "2026-11-26T00:00:00+08:00", "step_s": 60,
                                "qps": {"feed": day, "user": [500.0] * 1440}}))
    assert main(["simulate", "--world", str(SMALL), "--trace", str(good), "--policy", "hpa", "--json"]) == 0
    hpa = json.loads(capsys.readouterr().out)["policies"]["hpa"]
    assert hpa["actions"] >= 2  # up for the surge, down after it
    bad = tmp_path / "bad.yaml"
    bad.write_text("start: 2026-11-26T00:00:00\nstep_s: 7\nqps:\n  feed: [1, -1]\n  ghost: [1]\nextra: 1\n")
    assert main(["simulate", "--world", str(SMALL), "--trace", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    for want in ("bad.yaml:6: extra: unknown key", "bad.yaml:1: start: expected a timestamp with its offset",
                 "bad.yaml:2: step_s: expected a whole number of seconds", "bad.yaml:5: qps.ghost: no service named 'ghost'",
                 "qps: service 'user' has no traffic"):
        assert any(want in e for e in err), (want, err)
    assert main(["simulate", "--world", str(SMALL), "--trace", str(tmp_path / "none.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
