"""`:backends` and `cockpit backends`: how each backend last answered, from the engine."""

from __future__ import annotations

import json
import time

from cockpit.app import create_app
from cockpit.cli import main
from cockpit.engine.health import Health
from cockpit.session import open_session
from tests.conftest import SMALL, make_cfg
from tests.screen_text import keys, screen_text


async def test_the_backends_view_lists_what_the_engine_heard_failing_first(tmp_path):
    cfg = make_cfg(str(tmp_path / "small.db"), world=str(SMALL))
    s = open_session(cfg)
    app = create_app(s.cockpit, cfg, s.make_engine)
    async with app.run_test(size=(100, 30)) as pilot:
        deadline = time.monotonic() + 20
        while s.cockpit.engine is None or not s.cockpit.engine.active:
            assert time.monotonic() < deadline
            await pilot.pause(0.05)
        s.cockpit.engine.backend_health.failed("cloud", "cn-beijing", "SDK.HttpError: read timed out")
        for k in (":", *"backends", "enter"):
            await pilot.press(k)
        while "cloud/cn-beijing" not in keys(app, "backends") or "store/" not in " ".join(keys(app, "backends")):
            assert time.monotonic() < deadline, screen_text(app)
            await pilot.pause(0.05)
        assert keys(app, "backends")[0] == "cloud/cn-beijing"  # the failing one first
        text = " ".join(screen_text(app).split())
        assert "cloud API cn-beijing: not answering" in text and "SDK.HttpError: read timed out" in text
        assert "cloud cn-beijing down" in screen_text(app).splitlines()[0]  # and the header says so
    s.close()


def test_cockpit_backends_says_what_the_active_engine_wrote(tmp_path, capsys):
    db = str(tmp_path / "small.db")
    assert main(["backends", "--db", db, "--world", str(SMALL)]) == 0
    assert "no engine has reported on its backends yet" in capsys.readouterr().out
    s = open_session(make_cfg(db, world=str(SMALL)))
    engine = s.make_engine()
    assert engine.step_lease()
    engine.backend_health.failed("discovery", "etcd at http://127.0.0.1:1", "no answer within 3 s")
    assert engine.tick() and engine.tick()  # written with the next tick
    s.close()
    assert main(["backends", "--db", db, "--world", str(SMALL), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {b["kind"] for b in doc} >= {"store", "discovery", "registry"}
    # the engine has stopped: what it last saw is not said as the present
    said = {b["kind"]: b["said"] for b in doc if b["kind"] == "store" or b["name"] == "etcd at http://127.0.0.1:1"}
    assert said["discovery"].startswith("discovery store etcd at http://127.0.0.1:1: not answering (not checked: "
                                        "no engine is active; it was not answering (no answer within 3 s))")
    assert "not checked: no engine is active; it was answering" in said["store"]


def test_a_backend_that_fails_keeps_the_time_of_its_last_good_answer():
    now = [100.0]
    h = Health(clock=lambda: now[0])
    h.ok("cloud", "x")
    now[0] = 130.0
    h.failed("cloud", "x", "boom")
    now[0] = 160.0
    h.failed("cloud", "x", "boom again")
    (b,) = h.states()
    assert (b.ok, b.ok_real, b.since_real, b.error) == (False, 100.0, 130.0, "boom again")
    said = b.describe(160.0)
    assert said.startswith("cloud API x: not answering for 30 s (boom again); what it last said is 60 s old")
    h.ok("cloud", "x")
    assert h.states()[0].ok and h.take_changed()[0].ok
