"""The registry client (backends/registry_oci.py) on real docker-registry instances, and its
simulated twin (backends/sim/registry.py): one contract both keep, then what only one of them
has (auth, spool files, skopeo as a yardstick; simulated time and injected failures)."""

from __future__ import annotations

import http.server
import json
import logging
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from cockpit.backends.base import Manifest, Registry, RegistryError, Spooled
from cockpit.backends.registry_oci import OciRegistry, check_url, parse_challenge
from cockpit.backends.sim.registry import SimRegistry
from cockpit.core.images import layer_blob, world_image
from tests.registries import (  # noqa: F401 - fixtures are found by name
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    PASSWORD,
    READER,
    READER_PASSWORD,
    USER,
    DockerRegistry,
    docker_registry,
    free_port,
    htpasswd_registry,
    make_image,
    make_index,
    push_image,
    push_index,
    push_synthetic,
    random_layer,
    registry_factory,
    sha256,
    skopeo,
    token_registry,
    token_service,
)

MIB = 1 << 20


class FakeTime:
    """Simulated time: sleeping advances the clock at once."""

    def __init__(self):
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s


class Recorder:
    """A limiter that lets everything through and remembers each take(n)."""

    def __init__(self):
        self.taken: list[int] = []

    def take(self, n: int) -> None:
        self.taken.append(n)


class Breaker(Recorder):
    """A limiter that breaks the registry (SIGKILL, or down) once `after` bytes went through."""

    def __init__(self, side: Side, after: int):
        super().__init__()
        self.side, self.after = side, after

    def take(self, n: int) -> None:
        super().take(n)
        if sum(self.taken) >= self.after:
            self.side.break_it()


@dataclass
class Side:
    """One implementation under the contract: the real client on a docker-registry, or the twin."""

    kind: str
    reg: Registry
    work: Path
    server: DockerRegistry | None = None

    def break_it(self) -> None:
        if self.server is not None:
            self.server.kill()
        else:
            self.reg.down = True

    def revive(self) -> None:
        if self.server is not None:
            self.server.start()
        else:
            self.reg.down = False

    def corrupt(self, digest: str) -> None:
        """The stored bytes rot (same length, other content)."""
        if self.server is not None:
            path = self.server.blob_file(digest)
            data = bytearray(path.read_bytes())
            data[-1] ^= 0xFF
            path.write_bytes(bytes(data))
        else:
            self.reg.corrupt(digest)


def _side(kind: str, request, tmp_path: Path, server: DockerRegistry | None) -> Side:
    if kind == "oci":
        client = server.client(page_size=2)  # small pages: every listing spans several
        request.addfinalizer(client.close)
        return Side("oci", client, tmp_path, server)
    t = FakeTime()
    return Side("sim", SimRegistry("sim", clock=t.clock, sleep=t.sleep), tmp_path)


BOTH = [pytest.param("oci", marks=pytest.mark.integration), "sim"]


@pytest.fixture(params=BOTH)
def side(request, tmp_path) -> Side:
    """Shares the module's registry: use repository names of your own (repo())."""
    server = request.getfixturevalue("docker_registry") if request.param == "oci" else None
    return _side(request.param, request, tmp_path, server)


@pytest.fixture(params=BOTH)
def own_side(request, tmp_path) -> Side:
    """A registry of the test's own, which it may kill."""
    server = request.getfixturevalue("registry_factory")() if request.param == "oci" else None
    return _side(request.param, request, tmp_path, server)


def repo(name: str = "app") -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def spooled(side: Side, data: bytes) -> Spooled:
    path = side.work / f"blob-{sha256(data)[7:19]}"
    path.write_bytes(data)
    return Spooled(sha256(data), len(data), str(path))


# --- the contract: both implementations ----------------------------------------------------------------


@pytest.mark.parametrize("fmt, media", [("docker", DOCKER_MANIFEST), ("oci", OCI_MANIFEST)])
def test_pushed_image_reads_back_byte_exact_by_tag_and_digest(side, fmt, media):
    r = repo()
    image = push_synthetic(side.reg, r, "1.0", [300, 2000], side.work, fmt=fmt)
    for ref in ("1.0", image.manifest.digest):
        got = side.reg.manifest(r, ref)
        assert got == Manifest(media, image.manifest.digest, image.manifest.body)
        assert not got.is_index
    assert all(side.reg.has_blob(r, d) for d in image.blobs)


@pytest.mark.parametrize("fmt, media", [("docker", DOCKER_LIST), ("oci", OCI_INDEX)])
def test_multi_arch_index_keeps_its_digest_and_its_children(side, fmt, media):
    r = repo("multi")
    images = [make_image([random_layer(100, f"{arch}-{fmt}")], fmt, arch=arch) for arch in ("amd64", "arm64")]
    index = push_index(side.reg, r, "latest", images, side.work, fmt=fmt)
    got = side.reg.manifest(r, "latest")
    assert got == index and got.media_type == media and got.is_index
    for image in images:
        assert side.reg.manifest(r, image.manifest.digest).body == image.manifest.body


def test_tags_and_catalog_list_everything_across_pages(side):
    names = sorted(repo(f"cat{i}") for i in range(5))
    image = make_image([random_layer(64, "shared")])
    for name in names:
        push_image(side.reg, name, "v1", image, side.work)
    tags = ["v1", "v2", "v3", "latest", "stable"]
    for tag in tags[1:]:
        push_image(side.reg, names[0], tag, image, side.work)
    catalog = side.reg.catalog()  # the real client asks for pages of 2
    assert set(names) <= set(catalog) and len(catalog) == len(set(catalog))
    assert sorted(side.reg.tags(names[0])) == sorted(tags)


def test_what_is_not_there_is_none_or_empty(side):
    r = repo()
    push_synthetic(side.reg, r, "v1", [100], side.work)
    assert side.reg.manifest(r, "v2") is None
    assert side.reg.manifest(r, "sha256:" + "0" * 64) is None
    assert side.reg.manifest(repo("nobody"), "v1") is None
    assert side.reg.tags(repo("nobody")) == []
    assert side.reg.has_blob(r, "sha256:" + "1" * 64) is False


def test_a_blob_is_held_per_repository_until_mounted(side):
    a, b, c = repo("a"), repo("b"), repo("c")
    image = push_synthetic(side.reg, a, "v1", [500], side.work)
    layer = image.layers[0]
    assert side.reg.has_blob(a, layer) and not side.reg.has_blob(b, layer)
    assert side.reg.mount_blob(b, layer, a) is True
    assert side.reg.has_blob(b, layer)
    assert side.reg.mount_blob(c, "sha256:" + "2" * 64, a) is False  # a lacks it: nothing mounted
    assert not side.reg.has_blob(c, "sha256:" + "2" * 64)
    assert side.reg.stats.mounts[layer] == 1 and side.reg.stats.uploads[layer] == 1


def test_fetch_and_push_go_through_the_limiter_chunk_by_chunk(side):
    src, dst = repo("src"), repo("dst")
    data = random_layer(3 * MIB + 17, "limited")
    side.reg.push_blob(src, spooled(side, data), None)
    pulled = Recorder()
    blob = side.reg.fetch_blob(src, sha256(data), str(side.work / "spool"), pulled)
    assert (blob.digest, blob.size) == (sha256(data), len(data))
    if side.kind == "oci":
        assert Path(blob.path).read_bytes() == data
    assert sum(pulled.taken) == len(data) and len(pulled.taken) >= 4
    pushed = Recorder()
    side.reg.push_blob(dst, blob, pushed)
    assert sum(pushed.taken) == len(data) and len(pushed.taken) >= 4
    assert side.reg.has_blob(dst, sha256(data))
    assert side.reg.stats.uploads[sha256(data)] == 2 and side.reg.stats.fetches[sha256(data)] == 1


def test_a_blob_whose_bytes_rotted_is_a_digest_mismatch_and_leaves_no_file(side):
    r = repo()
    image = push_synthetic(side.reg, r, "v1", [4000], side.work)
    layer = image.layers[0]
    side.corrupt(layer)
    spool = side.work / "spool"
    with pytest.raises(RegistryError) as e:
        side.reg.fetch_blob(r, layer, str(spool))
    assert e.value.code == "DIGEST_MISMATCH" and not e.value.retry
    assert not spool.exists() or os.listdir(spool) == []


def test_a_manifest_must_be_the_digest_it_claims(side):
    r = repo()
    image = push_synthetic(side.reg, r, "v1", [100], side.work)
    other = make_image([random_layer(100, "other")])
    lying = Manifest(DOCKER_MANIFEST, other.manifest.digest, image.manifest.body)
    for ref, manifest in (("v2", lying), (other.manifest.digest, image.manifest)):
        with pytest.raises(RegistryError) as e:
            side.reg.put_manifest(r, ref, manifest)
        assert e.value.code == "DIGEST_MISMATCH" and not e.value.retry
    assert side.reg.manifest(r, "v2") is None


def test_a_manifest_naming_what_the_repository_lacks_is_refused(side):
    r = repo()
    image = make_image([random_layer(100, "never pushed")])
    child = push_synthetic(side.reg, r, "v1", [100], side.work)
    for manifest in (image.manifest, make_index([child, image])):
        with pytest.raises(RegistryError) as e:
            side.reg.put_manifest(r, "broken", manifest)
        assert (e.value.code, e.value.status, e.value.retry) == ("MANIFEST_BLOB_UNKNOWN", 400, False)
    assert side.reg.tags(r) == ["v1"]


def test_a_manifest_of_another_media_type_than_its_body_is_invalid(side):
    r = repo()
    image = push_synthetic(side.reg, r, "v1", [100], side.work)
    with pytest.raises(RegistryError) as e:
        side.reg.put_manifest(r, "v2", Manifest(OCI_MANIFEST, image.manifest.digest, image.manifest.body))
    assert e.value.code == "MANIFEST_INVALID"


def test_deleting_a_manifest_removes_its_tags_and_twice_is_fine(side):
    r = repo()
    image = push_synthetic(side.reg, r, "v1", [100], side.work)
    push_image(side.reg, r, "stable", image, side.work)
    keep = push_synthetic(side.reg, r, "v2", [100], side.work)
    side.reg.delete_manifest(r, image.manifest.digest)
    side.reg.delete_manifest(r, image.manifest.digest)
    assert side.reg.manifest(r, image.manifest.digest) is None and side.reg.manifest(r, "stable") is None
    assert side.reg.tags(r) == ["v2"] and side.reg.manifest(r, "v2") == keep.manifest


def test_names_that_are_not_names_never_reach_the_registry(side):
    for call in (lambda: side.reg.tags("../etc"), lambda: side.reg.manifest("app", "bad tag"),
                 lambda: side.reg.has_blob("app", "md5:abc"), lambda: side.reg.manifest("UPPER", "v1")):
        with pytest.raises(RegistryError) as e:
            call()
        assert e.value.code in ("NAME_INVALID", "TAG_INVALID", "DIGEST_INVALID") and not e.value.retry


def test_a_registry_that_is_down_is_a_connection_error_worth_retrying(own_side):
    own_side.break_it()
    for call in (own_side.reg.ping, own_side.reg.catalog, lambda: own_side.reg.tags("app")):
        with pytest.raises(RegistryError) as e:
            call()
        assert (e.value.code, e.value.retry) == ("CONNECTION", True)
    own_side.revive()
    own_side.reg.ping()


def test_a_registry_killed_mid_fetch_fails_cleanly_and_a_retry_completes(own_side):
    side = own_side
    r = repo()
    data = random_layer(24 * MIB, "big")  # more than loopback's socket buffers hold
    side.reg.push_blob(r, spooled(side, data))
    spool = side.work / "spool"
    with pytest.raises(RegistryError) as e:
        side.reg.fetch_blob(r, sha256(data), str(spool), Breaker(side, MIB))
    assert (e.value.code, e.value.retry) == ("CONNECTION", True)
    assert not spool.exists() or os.listdir(spool) == []  # no partial file
    side.revive()
    blob = side.reg.fetch_blob(r, sha256(data), str(spool))
    assert blob.size == len(data) and side.reg.stats.fetches[sha256(data)] == 1


def test_a_registry_killed_mid_push_stores_nothing_and_a_retry_uploads_once(own_side):
    side = own_side
    r = repo()
    data = random_layer(24 * MIB, "big push")
    blob = spooled(side, data)
    with pytest.raises(RegistryError) as e:
        side.reg.push_blob(r, blob, Breaker(side, 2 * MIB))
    assert (e.value.code, e.value.retry) == ("CONNECTION", True)
    side.revive()
    assert not side.reg.has_blob(r, blob.digest)
    side.reg.push_blob(r, blob)
    assert side.reg.has_blob(r, blob.digest)
    assert side.reg.stats.uploads[blob.digest] == 1


# --- the real client only -------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_spooled_blob_is_not_fetched_again(docker_registry, tmp_path):
    reg = docker_registry.client()
    r = repo()
    image = push_synthetic(reg, r, "v1", [5000], tmp_path)
    first = reg.fetch_blob(r, image.layers[0], str(tmp_path / "spool"))
    again = reg.fetch_blob(r, image.layers[0], str(tmp_path / "spool"))
    assert first == again and Path(first.path).name == image.layers[0].replace(":", "-")
    assert reg.stats.fetches[image.layers[0]] == 1 and reg.stats.bytes_fetched == 5000


@pytest.mark.integration
def test_bytes_that_do_not_match_their_digest_are_refused_by_the_registry(docker_registry, tmp_path):
    reg = docker_registry.client()
    path = tmp_path / "blob"
    path.write_bytes(b"not what the digest says")
    with pytest.raises(RegistryError) as e:
        reg.push_blob(repo(), Spooled("sha256:" + "3" * 64, 24, str(path)))
    assert (e.value.code, e.value.status, e.value.retry) == ("DIGEST_INVALID", 400, False)


@pytest.mark.integration
def test_a_big_blob_goes_up_in_chunks_and_reads_back_whole(docker_registry, tmp_path):
    reg = docker_registry.client(chunk_threshold=MIB, chunk_size=MIB // 2 + 3)
    r = repo()
    data = random_layer(3 * MIB + 5, "chunked")
    path = tmp_path / "blob"
    path.write_bytes(data)
    taken = Recorder()
    reg.push_blob(r, Spooled(sha256(data), len(data), str(path)), taken)
    assert sum(taken.taken) == len(data)
    assert Path(reg.fetch_blob(r, sha256(data), str(tmp_path / "spool")).path).read_bytes() == data


@pytest.mark.integration
def test_basic_auth_works_and_a_refusal_is_unauthorized_never_retried(htpasswd_registry, tmp_path):
    reg = htpasswd_registry.client()
    r = repo()
    image = push_synthetic(reg, r, "v1", [100], tmp_path)
    assert reg.manifest(r, "v1") == image.manifest
    for client in (OciRegistry("b", htpasswd_registry.url),
                   OciRegistry("b", htpasswd_registry.url, username=USER, password="wrong-password")):
        for call in (client.ping, client.catalog, lambda: client.manifest(r, "v1")):
            with pytest.raises(RegistryError) as e:
                call()
            assert (e.value.code, e.value.status, e.value.retry) == ("UNAUTHORIZED", 401, False)
            assert "wrong-password" not in str(e.value)


@pytest.mark.integration
def test_bearer_tokens_come_from_the_realm_and_are_reused_per_scope(token_registry, token_service, tmp_path):
    t = FakeTime()
    reg = token_registry.client(clock=t.clock)
    r = repo()
    image = push_synthetic(reg, r, "v1", [100, 200], tmp_path)
    assert reg.manifest(r, "v1") == image.manifest
    assert reg.tags(r) == ["v1"] and r in reg.catalog()
    assert reg.mount_blob(repo("other"), image.layers[0], r)
    blob = reg.fetch_blob(r, image.layers[1], str(tmp_path / "spool"))
    assert Path(blob.path).read_bytes() == image.blobs[image.layers[1]]
    issued = sum(token_service.issued.values())
    for _ in range(3):
        reg.manifest(r, "v1")
    assert sum(token_service.issued.values()) == issued  # cached
    t.now += token_service.expires_in  # expired: a new one is fetched
    reg.manifest(r, "v1")
    assert sum(token_service.issued.values()) == issued + 1


@pytest.mark.integration
def test_a_token_refusal_is_unauthorized_or_denied_and_never_retried(token_registry, token_service, tmp_path):
    r = repo()
    image = push_synthetic(token_registry.client(), r, "v1", [100], tmp_path)
    reader = token_registry.client(username=READER, password=READER_PASSWORD)
    assert reader.manifest(r, "v1") == image.manifest  # pulling is allowed
    blob = reader.fetch_blob(r, image.layers[0], str(tmp_path / "spool"))
    with pytest.raises(RegistryError) as e:
        reader.push_blob(repo(), blob)
    assert (e.value.code, e.value.status, e.value.retry) == ("DENIED", 403, False)
    for client in (OciRegistry("t", token_registry.url),
                   OciRegistry("t", token_registry.url, username=USER, password="wrong-password")):
        with pytest.raises(RegistryError) as e:
            client.manifest(r, "v1")
        assert (e.value.code, e.value.status, e.value.retry) == ("UNAUTHORIZED", 401, False)


@pytest.mark.integration
def test_no_password_or_token_in_messages_or_logs(token_registry, htpasswd_registry, token_service, tmp_path,
                                                    caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    for server in (token_registry, htpasswd_registry):
        reg = server.client()
        r = repo()
        push_synthetic(reg, r, "v1", [100], tmp_path)
        reg.manifest(r, "v1")
        seen.append(repr(reg))
        for password in ("wrong-password", READER_PASSWORD):
            try:
                OciRegistry("x", server.url, username=READER, password=password).catalog()
            except RegistryError as e:
                seen.append(str(e))
    tokens = [token_service.sign(USER, [])[:40]]  # every token starts with the same signed header
    text = "\n".join(seen + [rec.getMessage() for rec in caplog.records])
    for secret in (PASSWORD, "wrong-password", READER_PASSWORD, *tokens):
        assert secret not in text
    assert "UNAUTHORIZED" in text or "DENIED" in text


class _Sink(http.server.BaseHTTPRequestHandler):
    """Keeps what a registry posts: (Authorization header, content type, the events)."""

    posts: list[tuple[str, str, list[dict]]] = []
    arrived = threading.Event()

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.posts.append((self.headers.get("Authorization", ""), self.headers.get("Content-Type", ""),
                           json.loads(body).get("events", [])))
        self.arrived.set()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        return


@pytest.mark.integration
def test_a_registry_posts_its_push_events_to_the_url_the_test_gives(registry_factory, tmp_path):
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        server = registry_factory(notify_url=f"http://127.0.0.1:{sink.server_address[1]}/events",
                                  notify_headers={"Authorization": "Bearer hook-token"})
        image = push_synthetic(server.client(), "app", "v7", [100], tmp_path)
        pushed = None
        for _ in range(50):  # the registry posts from a queue of its own: wait for the manifest's
            assert _Sink.arrived.wait(10)
            _Sink.arrived.clear()
            pushed = next((e for _, _, events in _Sink.posts for e in events
                           if e["action"] == "push" and e["target"].get("tag") == "v7"), None)
            if pushed:
                break
        assert pushed["target"]["repository"] == "app" and pushed["target"]["digest"] == image.manifest.digest
        auth, ctype, _ = _Sink.posts[0]
        assert auth == "Bearer hook-token" and ctype.startswith("application/vnd.docker.distribution.events.v1+json")
    finally:
        sink.shutdown()
        sink.server_close()


@pytest.mark.integration
def test_skopeo_copies_what_we_push_and_we_read_what_it_pushes(registry_factory, tmp_path):
    ours, theirs = registry_factory(name="ours"), registry_factory(name="theirs")
    reg, other = ours.client(), theirs.client()
    work = tmp_path / "work"
    pushed = {
        "app:docker": push_synthetic(reg, "app", "docker", [1000, 70000], work).manifest,
        "app:oci": push_synthetic(reg, "app", "oci", [2000], work, fmt="oci").manifest,
        "multi:latest": push_index(reg, "multi", "latest", [make_image([random_layer(300, a)], arch=a)
                                                            for a in ("amd64", "arm64")], work),
    }
    for ref in pushed:
        r = skopeo("copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                   f"docker://127.0.0.1:{ours.port}/{ref}", f"docker://127.0.0.1:{theirs.port}/{ref}",
                   home=tmp_path / "home")
        assert r.returncode == 0, r.stderr
    for ref, manifest in pushed.items():
        repo_, tag = ref.split(":")
        got = other.manifest(repo_, tag)  # what skopeo pushed, read by us
        assert got == manifest
        if not got.is_index:
            for d in (json.loads(got.body)["config"]["digest"], *[x["digest"] for x in json.loads(got.body)["layers"]]):
                assert other.fetch_blob(repo_, d, str(tmp_path / "spool")).digest == d
    r = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://127.0.0.1:{ours.port}/app:docker",
               home=tmp_path / "home")
    assert r.returncode == 0 and r.stdout.encode() == pushed["app:docker"].body


def test_http_is_only_for_loopback_and_credentials_stay_out_of_the_url():
    assert check_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert check_url("https://reg.internal:5000/") == "https://reg.internal:5000"
    assert OciRegistry("x", "http://localhost:5000").url == "http://localhost:5000"
    for url in ("http://reg.internal:5000", "ftp://127.0.0.1", "https://reg/v2/", "127.0.0.1:5000",
                "http://10.0.0.1"):
        with pytest.raises(ValueError):
            OciRegistry("x", url)
    with pytest.raises(ValueError) as e:
        OciRegistry("x", "https://user:hunter2@reg.internal")
    assert "hunter2" not in str(e.value)
    assert "hunter2" not in repr(OciRegistry("x", "https://reg.internal", username="u", password="hunter2"))


def test_a_bearer_challenge_is_read_whatever_its_quoting():
    kind, params = parse_challenge(['Basic realm="r"', 'Bearer realm="https://a/token",service=reg,'
                                                       'scope="repository:x/y:pull,push"'])
    assert kind == "bearer"
    assert params == {"realm": "https://a/token", "service": "reg", "scope": "repository:x/y:pull,push"}
    assert parse_challenge([]) == ("", {})


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status and spec error body the test set."""

    answers: list[tuple[int, str]] = []

    def do_GET(self):  # noqa: N802
        status, code = self.answers.pop(0)
        body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode() if code else b"oops"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


def test_server_errors_and_throttling_are_worth_retrying_and_other_refusals_are_not():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        reg = OciRegistry("x", f"http://127.0.0.1:{server.server_address[1]}")
        _Refusing.answers = [(503, "UNAVAILABLE"), (429, "TOOMANYREQUESTS"), (500, ""), (400, ""),
                             (404, "NAME_UNKNOWN")]
        got = []
        for _ in range(4):
            with pytest.raises(RegistryError) as e:
                reg.catalog()
            got.append((e.value.code, e.value.status, e.value.retry))
        assert got == [("UNAVAILABLE", 503, True), ("TOOMANYREQUESTS", 429, True), ("HTTP_500", 500, True),
                       ("HTTP_400", 400, False)]
        assert reg.tags("gone") == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_nobody_listens_on_is_a_connection_error():
    reg = OciRegistry("x", f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(RegistryError) as e:
        reg.ping()
    assert (e.value.code, e.value.status, e.value.retry) == ("CONNECTION", None, True)


# --- the simulated twin only ------------------------------------------------------------------------------


def test_sim_transfer_takes_size_over_the_slower_of_link_and_limiter():
    t = FakeTime()
    slow = SimRegistry("slow", link_mbps=80, clock=t.clock, sleep=t.sleep)  # 10 MB/s
    layer = ("sha256:" + "a" * 64, 50_000_000)
    slow.push_blob("app", Spooled(*layer))
    assert t.now == pytest.approx(5.0)

    class Cap:  # 2 MB/s on the same simulated clock
        def take(self, n):
            t.sleep(n / 2_000_000)

    t.now = 0.0
    slow.fetch_blob("app", layer[0], "/nonexistent", Cap())
    assert t.now == pytest.approx(25.0)
    fast = SimRegistry("fast", link_mbps=1000, clock=t.clock, sleep=t.sleep)
    t.now = 0.0
    fast.push_blob("app", Spooled(*layer), Cap())
    assert t.now == pytest.approx(25.0)  # the limiter, not the link, sets the pace
    assert slow.stats.bytes_fetched == fast.stats.bytes_pushed == 50_000_000


def test_sim_images_have_real_manifests_whose_digest_follows_their_content():
    t = FakeTime()
    reg = SimRegistry("sim", clock=t.clock, sleep=t.sleep)
    layers = [layer_blob("debian", 120), layer_blob("jdk", 200)]
    m = reg.push_image("feed-web", "2.5", layers, 2048)
    assert m.digest == sha256(m.body) == world_image("feed-web:2.5", [("debian", 120), ("jdk", 200)])[2]
    assert reg.manifest("feed-web", "2.5") == m and reg.tags("feed-web") == ["2.5"]
    assert all(reg.has_blob("feed-web", d) for d, _ in layers)
    hotfix = reg.push_image("feed-web", "2.5-hotfix", layers, 2048, variant="hotfix")
    assert hotfix.digest != m.digest
    index = reg.push_index("multi", "1.0", {"linux/amd64": layers, "linux/arm64/v8": layers[:1]})
    doc = json.loads(index.body)
    assert index.is_index and [c["platform"]["architecture"] for c in doc["manifests"]] == ["amd64", "arm64"]
    assert all(reg.manifest("multi", c["digest"]) is not None for c in doc["manifests"])
    assert t.now == 0.0 and reg.stats.uploads == {}  # feeding it is not a transfer


def test_sim_injected_failures_fail_the_next_calls_with_their_code():
    t = FakeTime()
    reg = SimRegistry("sim", clock=t.clock, sleep=t.sleep)
    reg.push_image("app", "v1", [("sha256:" + "b" * 64, 10 * MIB)])
    reg.fail("manifest", "HTTP_503", times=2)
    reg.fail("tags", "UNAUTHORIZED")
    reg.fail("fetch_blob", "CONNECTION", after=0.5)
    for _ in range(2):
        with pytest.raises(RegistryError) as e:
            reg.manifest("app", "v1")
        assert (e.value.code, e.value.status, e.value.retry) == ("HTTP_503", 503, True)
    assert reg.manifest("app", "v1") is not None
    with pytest.raises(RegistryError) as e:
        reg.tags("app")
    assert (e.value.code, e.value.status, e.value.retry) == ("UNAUTHORIZED", 401, False)
    with pytest.raises(RegistryError) as e:
        reg.fetch_blob("app", "sha256:" + "b" * 64, "/nonexistent")
    assert (e.value.code, e.value.retry) == ("CONNECTION", True)
    assert t.now > 0 and reg.stats.fetches == {}  # half of it moved, then the cut
    assert reg.fetch_blob("app", "sha256:" + "b" * 64, "/nonexistent").size == 10 * MIB


def test_sim_blob_of_a_known_digest_with_another_size_is_refused():
    reg = SimRegistry("sim", sleep=lambda s: None)
    reg.push_blob("app", Spooled("sha256:" + "c" * 64, 100))
    with pytest.raises(RegistryError) as e:
        reg.push_blob("app", Spooled("sha256:" + "c" * 64, 101))
    assert e.value.code == "DIGEST_INVALID"


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """A registry that asks for basic credentials and serves blobs from elsewhere (a 307 to the
    `storage` server, as registries on object storage do); the storage keeps the headers it got."""

    storage = ""
    blob = b""
    seen: list[dict[str, str]] = []

    def do_GET(self):  # noqa: N802
        if self.server.server_address[1] == int(self.storage.rsplit(":", 1)[1]):
            self.seen.append(dict(self.headers))
            self._answer(200, self.blob)
        elif "Authorization" not in self.headers:
            self._answer(401, b"{}", {"WWW-Authenticate": 'Basic realm="r"'})
        else:
            self._answer(307, b"", {"Location": f"{self.storage}/bucket/blob?sig=x"})

    def _answer(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


def test_a_blob_served_from_another_host_is_followed_without_our_credentials(tmp_path):
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting) for _ in range(2)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    registry, storage = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    _Redirecting.storage, _Redirecting.blob, _Redirecting.seen = storage, b"layer bytes", []
    try:
        reg = OciRegistry("x", registry, username=USER, password=PASSWORD)
        got = reg.fetch_blob("app", sha256(b"layer bytes"), str(tmp_path / "spool"))
        assert Path(got.path).read_bytes() == b"layer bytes"
        (headers,) = _Redirecting.seen
        assert "Authorization" not in headers and headers["Host"] == storage.removeprefix("http://")
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
