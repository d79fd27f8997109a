"""The autoscaling rules against cases computed by hand (core/autoscale)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from cockpit.core.autoscale.decide import Observation, evaluate, recommend
from cockpit.core.autoscale.memory import Memory
from cockpit.domain import AutoscaleRule, PlacementRules, PoolLimits, RatePolicy, Service, Traffic

TZ = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=TZ).timestamp()  # a Thursday, 12:00 local
SVC = Service("feed", "http", "feed-web:1", "feed-web", cpu=2.0, memory_gb=4, disk_gb=10, ports=(8080,),
              containers={"a": 10}, traffic=Traffic(peak_qps=1000.0, cores_per_kqps=2.0), rules=PlacementRules())
FREE = PoolLimits("feed-web", min=0, max=1_000_000, cooldown_min=0)
HPA = AutoscaleRule("hpa", "target", ("feed",), target_pct=50)


def obs(t=T0, running=10, starting=0, cpu=50.0, qps=1000.0, hot=()):
    return Observation(t, running, starting, cpu, qps, hot)


def rec(rule, o, mem=None, history=None, limits=FREE):
    return recommend(SVC, rule, limits, o, mem if mem is not None else Memory(), TZ, history)


# --- target tracking: Kubernetes' HPA ------------------------------------------------------------


def test_hpa_desired_is_ceil_of_current_times_metric_over_target():
    # 10 x 80% / 50% = 16
    assert rec(HPA, obs(cpu=80)).count == 16
    # 10 x 23% / 50% = 4.6 -> 5 (after a first evaluation nothing is stabilised yet: the window is empty)
    assert rec(HPA, obs(cpu=23)).count == 5


@pytest.mark.parametrize("cpu, want", [(54.9, 10), (45.1, 10), (55.5, 12), (44.0, 9)])
def test_hpa_tolerance_of_a_tenth_leaves_the_count_alone(cpu, want):
    # ratio 54.9/50 = 1.098 and 45.1/50 = 0.902: within 0.1, no change; 55.5 -> ceil(11.1) = 12; 44 -> ceil(8.8) = 9
    assert rec(HPA, obs(cpu=cpu)).count == want


def test_starting_containers_count_as_using_nothing():
    # 8 serving at 80%, 2 starting: usage 8 x 80 = 640; 640 / (50 x 10) = 1.28, out of tolerance;
    # desired ceil(640 / 50) = 13
    assert rec(HPA, obs(running=8, starting=2, cpu=80)).count == 13


def test_scale_down_takes_the_highest_recommendation_of_the_last_300_s():
    mem = Memory()
    assert rec(HPA, obs(t=T0, cpu=80), mem).count == 16  # raw 16
    # a minute later the load halves: raw = ceil(10 x 30 / 50) = 6, but 16 was recommended within
    # 300 s, and the stabilised count is min(current, highest) = 10: no scale-down yet
    assert rec(HPA, obs(t=T0 + 60, cpu=30), mem).count == 10
    # 301 s after the 16: the highest within the window is the 6 of T0+60 (and now's 6)
    assert rec(HPA, obs(t=T0 + 361, cpu=30), mem).count == 6


def test_scale_up_rate_is_the_more_of_100_percent_or_4_pods_per_15_s():
    small = obs(running=2, cpu=100)  # raw ceil(2 x 100 / 50) = 4... make it want more:
    rule = replace(HPA, target_pct=10)  # raw ceil(2 x 100 / 10) = 20
    # limits: percent: ceil(2 x 2) = 4; pods: 2 + 4 = 6; the most of them: 6
    assert rec(rule, small).count == 6
    mem = Memory()
    mem.changed(T0 - 10, 2, 6)  # 4 added 10 s ago: the period started at 2 containers
    big = obs(running=6, cpu=100)
    # percent: ceil(2 x 2) = 4; pods: 2 + 4 = 6: no more than 6 until the period passes
    assert rec(rule, big, mem).count == 6
    assert rec(rule, replace(big, t=T0 + 20), mem).count == 12  # a new period: max(ceil(6 x 2), 6 + 4) = 12


def test_scale_down_rate_limit_of_pods_per_period():
    rule = replace(HPA, down=(RatePolicy("pods", 3, 60),), down_window_s=0)
    mem = Memory()
    # raw ceil(10 x 10 / 50) = 2; at most 3 fewer per minute: 10 - 3 = 7
    assert rec(rule, obs(cpu=10), mem).count == 7
    mem.changed(T0, 10, 7)
    # 30 s later the period started at 7 + 3 = 10: still 7 at the least
    assert rec(rule, obs(t=T0 + 30, running=7, cpu=10), mem).count == 7


# --- threshold, schedule, event, predict ---------------------------------------------------------


def test_cpu_over_threshold_multiplies_once_per_cool_down():
    rule = AutoscaleRule("cpu-over-50", "cpu", ("feed",), threshold_pct=50, factor=2)
    lim = replace(FREE, cooldown_min=5)
    mem = Memory()
    assert rec(rule, obs(cpu=50), mem, limits=lim) is None  # not over
    assert rec(rule, obs(cpu=51), mem, limits=lim).count == 20  # ceil(10 x 2)
    # a minute later, 20 asked for and 10 of them starting: it holds, it does not double again
    assert rec(rule, obs(t=T0 + 60, running=10, starting=10, cpu=90), mem, limits=lim).count == 20
    assert rec(rule, obs(t=T0 + 301, running=20, cpu=90), mem, limits=lim).count == 40


def test_schedule_window_from_lead_before_to_hold_after_on_weekdays():
    rule = AutoscaleRule("peaks", "schedule", ("feed",), at=("12:30",), lead_min=30, hold_min=90, factor=1.5,
                         min_count=12, days="weekdays")
    mem = Memory()
    noon = obs(t=T0 - 1)  # 11:59:59: before the window
    assert rec(rule, noon, mem) is None
    r = rec(rule, obs(t=T0), mem)  # 12:00: the window opens; base 10 -> max(12, ceil(15)) = 15
    assert r.count == 15
    # later in the window the base stays the count at its start, whatever runs now
    assert rec(rule, obs(t=T0 + 3600, running=30), mem).count == 15
    assert rec(rule, obs(t=T0 + 7199), mem).count == 15  # 13:59:59, the last second
    assert rec(rule, obs(t=T0 + 7200), mem) is None  # 14:00
    saturday = T0 + 2 * 86400
    assert rec(rule, obs(t=saturday), Memory()) is None


def test_an_event_rule_multiplies_the_count_at_the_hot_event_start_for_hold_min():
    rule = AutoscaleRule("hot", "event", ("feed",), factor=2, hold_min=90)
    mem = Memory()
    assert rec(rule, obs(), mem) is None
    assert rec(rule, obs(t=T0 + 60, hot=(("wedding", T0 + 30),)), mem).count == 20
    assert rec(rule, obs(t=T0 + 3000, running=40), mem).count == 20  # the event is over, the hold is not
    assert rec(rule, obs(t=T0 + 30 + 90 * 60), mem) is None


def test_predict_uses_how_yesterday_and_last_week_moved_from_this_time():
    rule = AutoscaleRule("ahead", "predict", ("feed",), target_pct=50, horizon_min=10)

    def history(_svc, t):
        # yesterday: 100 qps at this time, 150 in 5 min, 200 in 10; last week: 100, 100, 300
        day, week = T0 - 86400, T0 - 7 * 86400
        table = {day: 100, day + 300: 150, day + 600: 200, week: 100, week + 300: 100, week + 600: 300,
                 T0 - 600: 1000}
        return table.get(t)

    # now 1000 qps, flat trend; in 5 min: 1000 x mean(1.5, 1.0) = 1250; in 10: 1000 x mean(2, 3) = 2500
    # containers at 50%: ceil(2500 x 2 / 1000 / (2 x 0.5)) = 5
    r = rec(rule, obs(cpu=50), history=history)
    assert r.count == 5 and "2,500 qps" in r.formula


# --- the decision: the highest wins, limits, cool-down -------------------------------------------


def test_the_highest_recommendation_decides_within_the_pool_limits():
    rules = [HPA, AutoscaleRule("cpu", "cpu", ("feed",), threshold_pct=60, factor=3)]
    lim = PoolLimits("feed-web", min=5, max=25, cooldown_min=0)
    d = evaluate(SVC, rules, lim, obs(cpu=70), Memory(), TZ)
    # HPA: ceil(10 x 70 / 50) = 14; threshold: ceil(10 x 3) = 30; the most, 30, kept within max 25
    assert (d.desired, d.rule) == (25, "cpu") and "limits [5, 25]" in d.note
    assert "30" in d.formula and "CPU 70.0%" in d.explain()


def test_a_scale_down_waits_out_the_cool_down_after_a_change():
    lim = PoolLimits("feed-web", cooldown_min=5)
    mem = Memory()
    assert evaluate(SVC, [HPA], lim, obs(cpu=80), mem, TZ).desired == 16
    d = evaluate(SVC, [replace(HPA, down_window_s=0)], lim, obs(t=T0 + 60, running=16, cpu=20), mem, TZ)
    assert d.desired == 16 and "cool-down" in d.note
    d = evaluate(SVC, [replace(HPA, down_window_s=0)], lim, obs(t=T0 + 301, running=16, cpu=20), mem, TZ)
    assert d.desired == 7  # ceil(16 x 20 / 50) = 7


def test_a_paused_rule_has_no_say():
    d = evaluate(SVC, [replace(HPA, enabled=False)], FREE, obs(cpu=90), Memory(), TZ)
    assert d.desired == 10 and d.rule is None


def test_memory_survives_a_round_trip_through_json():
    mem = Memory()
    evaluate(SVC, [HPA], FREE, obs(cpu=80), mem, TZ)
    again = Memory.from_json(__import__("json").loads(__import__("json").dumps(mem.as_json())))
    assert again == mem


def test_a_rate_limit_never_turns_a_scale_up_into_a_scale_down():
    from cockpit.core.autoscale.hpa import rate_limited

    rule = replace(HPA, up=(RatePolicy("pods", 4, 60),))
    mem = Memory()
    mem.changed(T0 - 30, 10, 40)  # 30 added within the period: it started at 10, so the limit is 14
    # Kubernetes holds the current count rather than going down to 14
    assert rate_limited(mem, T0, 50, 40, rule) == 40


def test_a_period_starts_at_the_count_before_changes_both_ways():
    from cockpit.core.autoscale.hpa import rate_limited

    rule = replace(HPA, up=(RatePolicy("pods", 4, 60),))
    mem = Memory()
    mem.changed(T0 - 30, 36, 30)  # 6 removed within the period: it started at 36 -> at most 40
    assert rate_limited(mem, T0, 50, 30, rule) == 40


def test_a_scale_up_that_the_starting_containers_turn_around_changes_nothing():
    # 10 serving at 80% and 10 starting, target 50%: over the serving ones, 1.6 (up); with the
    # starting ones at 0%, 800 / (50 x 20) = 0.8 (down): the direction turns, so it stays at 20
    assert rec(HPA, obs(running=10, starting=10, cpu=80)).count == 20


def test_a_schedule_window_opening_is_found_for_the_engine_to_arm():
    from cockpit.core.autoscale.decide import window_starts

    rule = AutoscaleRule("peaks", "schedule", ("feed",), at=("12:30", "22:30"), lead_min=30, hold_min=60, factor=2,
                         days="weekdays")
    # from 11:59 to 12:01 the 12:30 window opens at 12:00; the 22:30 one later
    assert window_starts(rule, T0 - 60, T0 + 60, TZ) == [T0]
    assert window_starts(rule, T0, T0 + 60, TZ) == []  # (t0, t1]: already open at t0
    assert window_starts(rule, T0, T0 + 86400, TZ) == [T0 + 10 * 3600, T0 + 86400]  # 22:00, then Friday 12:00
    saturday = T0 + 2 * 86400 - 60
    assert window_starts(rule, saturday, saturday + 120, TZ) == []
