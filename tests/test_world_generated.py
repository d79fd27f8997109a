"""The generated worlds (`data/gen_world.py`): the committed 20,000-host world is what the
generator makes, loads within the loader's bounds and places every container; the generator is
deterministic, keeps the demo's load per container, and refuses bad arguments in one line."""

from __future__ import annotations

import importlib.util

import pytest

from cockpit import world, yamlcheck
from tests.conftest import DEMO

ROOT = DEMO.parent.parent
BIG = ROOT / "data" / "world-20k.yaml"
BIG_ARGS = dict(idcs=5, containers=200_000, name="world-20k")


def _gen():
    spec = importlib.util.spec_from_file_location("gen_world", ROOT / "data" / "gen_world.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def containers(w) -> int:
    return sum(sum(s.containers.values()) for s in w.services)


def test_the_20k_world_has_20000_hosts_200000_containers_in_5_idcs():
    w = world.load(BIG)
    assert (w.host_count, containers(w), len(w.idcs)) == (20_000, 200_000, 5)
    assert [i.name for i in w.idcs] == ["yongfeng", "tucheng", "aliyun", "jiuxianqiao", "xierqi"]
    assert {r.idc for r in w.registries} == {i.name for i in w.idcs}  # each IDC pulls from a registry of its own
    # a compact description: host groups with counts, far inside the loader's bounds
    assert BIG.stat().st_size < 64 * 1024 < yamlcheck.MAX_BYTES


def test_the_committed_20k_world_is_exactly_what_the_generator_makes():
    assert _gen().world_text(20_000, **BIG_ARGS) == BIG.read_text()


def test_every_container_of_the_20k_world_has_a_host_at_the_start():
    from cockpit.core.bootstrap import hosts_from_world, place_initial

    w = world.load(BIG)
    _, initial = place_initial(w, hosts_from_world(w))
    assert sum(i.plan.placed for i in initial) == 200_000
    assert not [i for i in initial if i.plan.unplaced]


def test_smaller_containers_carry_the_demo_s_load_per_core():
    """More containers on the same hosts are as much smaller, and traffic follows the hosts: each
    service's peak CPU against what its containers reserve stays the demo's (pools as busy)."""
    demo, big = world.load(DEMO), world.load(BIG)

    def busy(w, name):
        s = w.service(name)
        return s.traffic.peak_qps * s.traffic.cores_per_kqps / 1000 / (sum(s.containers.values()) * s.cpu)

    for s in demo.services:
        assert busy(big, s.name) == pytest.approx(busy(demo, s.name), rel=0.02), s.name
    host_bound = [s.name for s in big.services if s.host_ports]
    assert host_bound == ["relation"] and big.service("relation").cpu == demo.service("relation").cpu


def test_the_generator_makes_the_same_world_every_time_and_the_6000_host_world_as_before():
    gen = _gen()
    assert gen.world_text(6000) == gen.world_text(6000)
    w = world.loads(gen.world_text(6000))
    assert (w.name, w.host_count, len(w.idcs)) == ("hosts_6000", 6000, 3)
    assert [s.cpu for s in w.services] == [s.cpu for s in world.load(DEMO).services]


@pytest.mark.parametrize(("args", "says"), [
    (["--idcs", "9"], "expected 3 to 8 IDCs, got 9"),
    (["--idcs", "five"], "expected a whole number of IDCs, got 'five'"),
    (["--containers", "0"], "expected 1 to 1000000 containers, got 0"),
])
def test_the_generator_refuses_bad_arguments_in_one_line(tmp_path, capsys, args, says):
    out = tmp_path / "w.yaml"
    with pytest.raises(SystemExit) as exit_:
        _gen().main(["--hosts", "1000", "--out", str(out), *args])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err
    assert not out.exists()


def test_fewer_containers_than_the_host_bound_ones_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "w.yaml"
    assert _gen().main(["--hosts", "1000", "--containers", "50", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bound to host ports" in err
    assert not out.exists()
