"""`cockpit check`, `cockpit hosts`, and bad input on the command line: one clear line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cockpit.cli import main
from tests.conftest import DEMO, SMALL


def run(*args: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "cockpit", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)


def test_check_prints_a_summary_for_a_good_world():
    r = run("check", str(DEMO))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("world demo: OK")
    assert "hosts       2060" in r.stdout


def test_check_prints_one_line_per_problem_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.read_text().replace("cores: 12", "cores: twelve").replace("kind: private}", "kind: privat}"))
    r = run("check", str(bad))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{bad}:") for line in lines)
    assert "Traceback" not in r.stderr


def test_check_reports_containers_that_do_not_fit(tmp_path):
    bad = tmp_path / "full.yaml"
    bad.write_text(SMALL.read_text().replace("containers: {yf: 8}", "containers: {yf: 400}"))
    r = run("check", str(bad))
    assert r.returncode == 2
    assert "services[1].containers.yf: placed" in r.stdout
    assert "full" in r.stdout


def test_hosts_json_lists_every_host_with_capacity_allocation_and_state(demo_db):
    r = run("hosts", "--db", demo_db, "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["world"] == "demo" and len(data["hosts"]) == 2060
    h = next(x for x in data["hosts"] if x["name"] == "yf-feed-new-0001")
    assert h["idc"] == "yongfeng" and h["pool"] == "feed-web" and h["hardware"] == "new"
    assert h["labels"] == {"disk": "ssd", "gen": "new", "role": "web"}
    assert h["capacity"] == {"cores": 32, "memory_gb": 32, "disk_gb": 1200}
    assert h["alive"] is True
    alloc = h["allocated"]
    assert alloc["containers"] == alloc["services"]["feed"] > 0
    assert alloc["memory_gb"] == 4 * alloc["containers"]
    total = sum(x["allocated"]["containers"] for x in data["hosts"])
    assert total == 6794


def test_hosts_text_has_a_line_per_host(demo_db):
    r = run("hosts", "--db", demo_db)
    assert r.returncode == 0
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("HOST") and len(lines) == 2062
    assert lines[-1].startswith("# 2060 hosts, 0 down")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--speed", "fast"], "argument --speed: expected a number, got 'fast'"),
        (["--speed", "0"], "expected a number in (0, 100000]"),
        (["--role", "god"], "argument --role: invalid choice: 'god'"),
        (["hosts", "--world", "/nope.yaml"], "/nope.yaml: no such file"),
        (["check"], "the following arguments are required: WORLD"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_a_bad_config_file_is_named_with_its_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("role: operator\nspeeed: 3\n")
    r = run("hosts", "--config", str(cfg))
    assert r.returncode == 2
    assert f"{cfg}:2: speeed: unknown key" in r.stderr


def test_an_unknown_binding_id_in_the_config_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("keys: {gotoo: g}\n")
    r = run("--config", str(cfg))
    assert r.returncode == 2
    assert "keys.gotoo: no binding with this id" in r.stderr


def test_a_store_of_another_world_is_refused_with_the_way_out(demo_db):
    r = run("hosts", "--world", str(SMALL), "--db", demo_db)
    assert r.returncode == 2
    assert "this store holds world 'demo', not 'small'" in r.stderr


WORDS = ["check", "hosts", "--json", "--world", "--db", "--config", "--speed", "-1", "1e9", "x.yaml",
         str(SMALL), "/dev/null", "", "--", "--role", "admin", "--readonly", "\x00", "é"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).filter(lambda a: a[0] in ("check", "hosts")))
def test_random_command_lines_never_end_in_a_traceback(tmp_path, capsys, monkeypatch, args):
    # a relative store (x.yaml) and the default one (no --db) land in the test's directory
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    try:
        code = main(args)
    except SystemExit as e:
        code = e.code
    assert code in (0, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_plan_json_has_placements_unplaced_metrics_and_dependencies(demo_db):
    r = run("plan", "--db", demo_db, "--service", "feed", "--count", "10", "--idc", "tucheng", "--strategy", "binpack", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) >= {"placements", "unplaced", "metrics", "dependencies"}
    assert sum(p["count"] for p in doc["placements"]) == 10
    assert all(p["service"] == "feed" and p["host"].startswith("tc-") for p in doc["placements"])
    assert [(d["service"], d["count"]) for d in doc["dependencies"]] == [("user", 4), ("relation", 1), ("card", 3)]
    for d in doc["dependencies"]:
        assert set(d) >= {"placements", "unplaced", "metrics"}


def test_plan_is_deterministic_for_a_seed(demo_db):
    args = ("plan", "--db", demo_db, "--service", "feed", "--count", "50", "--strategy", "random", "--seed", "7", "--json")
    assert run(*args).stdout == run(*args).stdout


def test_plan_text_and_compare(demo_db):
    r = run("plan", "--db", demo_db, "--template", "101", "--count", "3000", "--idc", "tucheng")
    assert r.returncode == 0
    assert "needs: 80 shared hosts (320)" in r.stdout and "ecs.c6.4xlarge" in r.stdout
    r = run("plan", "--db", demo_db, "--service", "card", "--count", "50", "--compare")
    assert r.returncode == 0
    assert r.stdout.splitlines()[1].split() == ["spread", "binpack", "random", "custom"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--service", "feed"], "the following arguments are required: --count"),
        (["--service", "feed", "--count", "-5"], "expected a count from 1 to 10000000"),
        (["--service", "nope", "--count", "1"], "no service named 'nope'"),
        (["--service", "feed", "--count", "1", "--idc", "mars"], "no IDC named 'mars'"),
        (["--service", "feed", "--count", "1", "--filter", "disk >> 2"], "'disk >> 2': the value '> 2' starts with '>'"),
        (["--service", "feed", "--count", "1", "--filter", "disk"], "'disk' is not a constraint like"),
        (["--service", "feed", "--count", "1", "--strategy", "custom", "--weights", "x=1"], "unknown scorer 'x'"),
        (["--service", "feed", "--template", "101", "--count", "1"], "not allowed with argument"),
    ],
)
def test_plan_bad_input_exits_2_with_one_line(demo_db, args, message):
    r = run("plan", "--db", demo_db, *args)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr


def test_a_cloud_without_its_keys_is_named_before_anything_starts(tmp_path):
    import os

    cfg = tmp_path / "c.yaml"
    cfg.write_text("backends: {cloud: {kind: aliyun, endpoint: '127.0.0.1:9'}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD")}
    r = subprocess.run([sys.executable, "-m", "cockpit", "--config", str(cfg), "engine"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 2
    assert "backends.cloud: cloud credentials: environment variable ALIBABA_CLOUD_ACCESS_KEY_ID and " \
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET not set" in r.stderr


def test_plain_http_to_a_remote_cloud_is_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("backends: {cloud: {kind: aliyun, endpoint: ecs.aliyuncs.com, protocol: http}}\n")
    r = run("--config", str(cfg), "engine", ALIBABA_CLOUD_ACCESS_KEY_ID="k", ALIBABA_CLOUD_ACCESS_KEY_SECRET="s")
    assert r.returncode == 2 and "plain http is only for a loopback endpoint" in r.stderr
    assert "\ns\n" not in r.stderr


@pytest.mark.parametrize(
    "registries, message",
    [
        ("{reg-a: {url: 'http://reg.example.com:5000'}}",
         "backends.registry.registries.reg-a.url: 'http://reg.example.com:5000': http only for a loopback registry"),
        ("{reg-a: {url: 'https://reg.example.com', credentials: {user_env: REG_USER, password_env: REG_PASS}}}",
         "backends.registry.registries.reg-a.credentials.user_env: REG_USER is not set"),
        ("{reg-a: {url: 'https://reg.example.com', credentials: {file: no-such-file}}}",
         "backends.registry.registries.reg-a.credentials.file: No such file or directory"),
    ],
)
def test_a_real_registry_that_cannot_be_reached_safely_is_named_before_anything_starts(tmp_path, registries, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"backends: {{registry: {{kind: oci, registries: {registries}}}}}\n")
    r = run("--config", str(cfg), "engine", REG_USER="", REG_PASS="")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_a_webhook_without_its_token_is_refused_before_anything_starts(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("backends: {registry: {webhook: {listen: '127.0.0.1:8787', token_env: HOOK_TOKEN}}}\n")
    r = run("--config", str(cfg), "engine", HOOK_TOKEN="")
    assert r.returncode == 2 and "backends.registry.webhook: the bearer token is not set: put it in $HOOK_TOKEN" \
        in r.stderr, r.stderr
    with pytest.raises(ValueError, match="no bearer token"):
        from cockpit.engine.webhook import WebhookServer
        WebhookServer(("127.0.0.1", 0), "", {"reg-a"}, lambda *a: 0)


def test_a_registry_credentials_file_is_found_beside_the_config(tmp_path):
    from cockpit import config

    (tmp_path / "conf").mkdir()
    cfg = tmp_path / "conf" / "c.yaml"
    cfg.write_text("backends: {registry: {kind: oci, registries: {reg-a: {url: 'https://r', "
                   "credentials: {file: reg-a.cred}}}}}\n")
    loaded = config.load(str(cfg))
    assert loaded.backends["registry"]["registries"]["reg-a"]["credentials"]["file"] == str(tmp_path / "conf" / "reg-a.cred")


def test_ecs_orders_and_moves_from_the_command_line(demo_db):
    r = run("ecs", "order", "--db", demo_db, "--template", "101", "--count", "10")
    assert r.returncode == 2 and "confirm with --yes" in r.stderr
    r = run("ecs", "order", "--db", demo_db, "--template", "101", "--count", "10", "--yes")
    assert r.returncode == 0 and "ECS order 1: 10 x ecs.c6.4xlarge" in r.stdout
    r = run("ecs", "list", "--db", demo_db, "--json")
    (order,) = json.loads(r.stdout)
    assert (order["count"], order["state"]) == (10, "queued")
    r = run("ecs", "cancel", "7", "--db", demo_db, "--yes")
    assert r.returncode == 2 and "no ECS order 7" in r.stderr
    r = run("--readonly", "move", "--db", demo_db, "--to", "shared", "--from", "feed-web", "--count", "2", "--yes")
    assert r.returncode == 2 and "read-only" in r.stderr
    r = run("pools", "--db", demo_db, "--json")
    pools = json.loads(r.stdout)
    assert {"pool": "shared", "idc": "tucheng"}.items() <= next(p for p in pools if p["pool"] == "shared" and p["idc"] == "tucheng").items()
    r = run("costs", "--db", demo_db, "--json")
    assert len(json.loads(r.stdout)["expiring"]) == 40


def test_scale_in_is_queued_from_the_command_line_and_refused_for_an_unknown_service(demo_db, capsys):
    assert main(["scale-in", "--db", demo_db, "--service", "feed", "--count", "3", "--yes"]) == 0
    assert "feed -3" in capsys.readouterr().out
    assert main(["scale-in", "--db", demo_db, "--service", "nope", "--count", "3", "--yes"]) == 2
    assert capsys.readouterr().err.strip() == "cockpit: no service named 'nope'"
