"""semkv_client against a real semkvd with the tiny test model (see conftest.py)."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest

from conftest import PROTO_ROOT, codegen
from semkv_client import (
    AlreadyExistsError,
    Client,
    FinishReason,
    GenerateResult,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    Role,
    SemkvError,
    Turn,
    UnavailableError,
)
from semkv_client.client import _to_turns
from semkv_client._stubs import pb

CONTEXT = [
    ("system", "You are a careful physics tutor."),
    ("user", "Explain why the sky is blue."),
]


def greedy(c: Client, cluster: str, n: int = 16, **kw: Any) -> GenerateResult:
    return c.generate(cluster, max_tokens=n, ignore_eos=True, **kw)


# -- no daemon needed ---------------------------------------------------------------


def test_stubs_are_current_with_the_proto() -> None:
    if PROTO_ROOT is None:
        pytest.skip("not a source checkout")
    assert codegen.is_current(PROTO_ROOT), "run clients/python/generate.sh"
    assert pb.DESCRIPTOR.services_by_name["SemKv"].full_name == "semkv.v1.SemKv"


def test_turn_conversion() -> None:
    turns = _to_turns(
        [
            ("system", "s"),
            (Role.USER, "u"),
            Turn("model", "a"),
            {"role": "user", "content": "c"},
        ]
    )
    assert [t.role for t in turns] == [
        pb.ROLE_SYSTEM, pb.ROLE_USER, pb.ROLE_ASSISTANT, pb.ROLE_USER,
    ]
    assert [t.text for t in turns] == ["s", "u", "a", "c"]
    assert [(t.role, t.text) for t in _to_turns("hi")] == [(pb.ROLE_USER, "hi")]
    assert _to_turns(None) == []
    with pytest.raises(ValueError, match="unknown role"):
        _to_turns([("robot", "x")])
    with pytest.raises(TypeError):
        _to_turns(["bare string"])  # type: ignore[list-item]


def test_unreachable_daemon_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}", timeout=5) as c:
        with pytest.raises(UnavailableError) as e:
            c.list_clusters()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE
    with Client(f"127.0.0.1:{port}") as c, pytest.raises(UnavailableError):
        c.wait_ready(0.5)


def test_list_clusters_follows_every_page() -> None:
    requests = []
    pages = {"": (["a", "b"], "b"), "b": (["c"], "")}

    class Stub:
        def ListClusters(self, req: Any, timeout: Any = None) -> Any:
            requests.append((dict(req.label_selector), req.page_size, req.page_token))
            ids, token = pages[req.page_token]
            return pb.ListClustersResponse(
                clusters=[pb.Cluster(id=i) for i in ids], next_page_token=token
            )

    with Client("127.0.0.1:1") as c:
        c._stub = Stub()
        assert [x.id for x in c.list_clusters({"k": "v"})] == ["a", "b", "c"]
    assert requests == [({"k": "v"}, 0, ""), ({"k": "v"}, 0, "b")]


# -- against semkvd -----------------------------------------------------------------


def test_server_info(client: Client) -> None:
    info = client.server_info()
    assert info.version
    assert info.backend == "cpu"
    assert "tiny-gemma3-bf16" in info.model
    assert info.model_fingerprint
    assert info.queue_capacity == 64


def test_cluster_lifecycle(client: Client) -> None:
    created = client.create_cluster("life", labels={"topic": "physics", "tier": "a"})
    assert created.id == "life"
    assert created.labels == {"topic": "physics", "tier": "a"}
    assert created.cache_tokens == 0 and created.turn_count == 0
    assert created.created_unix_ms > 0
    client.create_cluster("life-other", labels={"topic": "chemistry"})
    assert client.get_cluster("life") == created
    ids = {c.id for c in client.list_clusters()}
    assert {"life", "life-other"} <= ids
    assert [c.id for c in client.list_clusters({"topic": "physics", "tier": "a"})] == ["life"]
    assert client.list_clusters({"topic": "biology"}) == []
    with pytest.raises(AlreadyExistsError) as e:
        client.create_cluster("life")
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    client.delete_cluster("life")
    client.delete_cluster("life-other")
    with pytest.raises(NotFoundError):
        client.get_cluster("life")
    assert "life" not in {c.id for c in client.list_clusters()}


def test_list_clusters_in_pages(client: Client) -> None:
    ids = [f"paged-{i:02d}" for i in range(12)]
    for i in reversed(ids):
        client.create_cluster(i, labels={"paged": "yes"})
    sizes, seen, token = [], [], ""
    while True:
        page, token = client.list_clusters_page(
            {"paged": "yes"}, page_size=5, page_token=token
        )
        sizes.append(len(page))
        seen += [c.id for c in page]
        if not token:
            break
    assert sizes == [5, 5, 2] and seen == ids
    assert [c.id for c in client.list_clusters({"paged": "yes"})] == ids
    with pytest.raises(InvalidArgumentError, match="page_size"):
        client.list_clusters_page(page_size=1001)
    with pytest.raises(InvalidArgumentError, match="page_token"):
        client.list_clusters_page(page_token="not/a/token")
    for i in ids:
        client.delete_cluster(i)


def test_append_then_greedy_twice_is_identical(client: Client) -> None:
    client.create_cluster("greedy")
    appended = client.append("greedy", CONTEXT)
    assert appended.tokens_added > 0
    assert appended.total_tokens == appended.tokens_added
    more = client.append("greedy", "One more thing.")
    assert more.total_tokens == appended.total_tokens + more.tokens_added
    cluster = client.get_cluster("greedy")
    assert cluster.cache_tokens == more.total_tokens
    assert cluster.turn_count == 3

    first = greedy(client, "greedy", 16)
    second = greedy(client, "greedy", 16)
    assert first.text == second.text
    assert first.tokens == second.tokens
    assert len(first.tokens) == 16
    assert first.finish_reason == FinishReason.LENGTH
    assert first.reused_tokens == more.total_tokens
    assert not first.committed
    assert client.get_cluster("greedy").cache_tokens == more.total_tokens  # uncommitted

    # Seeded sampling is reproducible too.
    s1 = client.generate("greedy", max_tokens=12, temperature=0.9, seed=7, ignore_eos=True)
    s2 = client.generate("greedy", max_tokens=12, temperature=0.9, seed=7, ignore_eos=True)
    assert s1.tokens == s2.tokens


def test_stream_yields_deltas_then_summary(client: Client) -> None:
    client.create_cluster("stream")
    client.append("stream", CONTEXT)
    items = list(client.stream_generate("stream", max_tokens=20, ignore_eos=True))
    *deltas, summary = items
    assert isinstance(summary, GenerateResult)
    assert deltas and all(isinstance(d, str) and d for d in deltas)
    # The deltas add up to the summary's text. (Not past an invalid UTF-8 byte
    # sequence: the summary decodes it as a whole, one U+FFFD per byte token, while
    # the deltas decode it piecewise; the tiny random model does produce such bytes.)
    joined = "".join(deltas)  # type: ignore[arg-type]
    valid = summary.text.split("\ufffd")[0]
    assert joined.startswith(valid)
    if "\ufffd" not in summary.text:
        assert joined == summary.text
    assert summary.tokens == greedy(client, "stream", 20).tokens

    # Breaking out early cancels the call; the cluster stays usable and unchanged.
    stream = client.stream_generate("stream", max_tokens=200, ignore_eos=True)
    assert isinstance(next(stream), str)
    stream.close()
    assert greedy(client, "stream", 20).tokens == summary.tokens


def test_prompt_stop_and_commit(client: Client) -> None:
    client.create_cluster("commit")
    client.append("commit", CONTEXT)
    full = greedy(client, "commit", 24, prompt="And at sunset?")
    assert full.prompt_tokens > 0

    # A stop string taken from the greedy output cuts the same generation before it.
    stream = list(client.stream_generate("commit", "And at sunset?", max_tokens=24, ignore_eos=True))
    candidates = [
        d.strip() for d in stream[1:-1]
        if isinstance(d, str) and d.strip().isprintable() and d.strip() and "\ufffd" not in d
    ]
    assert candidates, f"nothing in the greedy output to stop at: {stream[:-1]}"
    stop = candidates[0]
    cut = greedy(client, "commit", 24, prompt="And at sunset?", stop=[stop, "never-there"])
    assert cut.finish_reason == FinishReason.STOP_STRING
    assert len(cut.tokens) < len(full.tokens)
    assert cut.tokens == full.tokens[: len(cut.tokens)]
    assert stop not in cut.text
    if "\ufffd" not in full.text:
        assert cut.text == full.text[: full.text.index(stop)]

    before = client.get_cluster("commit")
    committed = greedy(client, "commit", 8, prompt="And at sunset?", commit=True)
    assert committed.committed
    assert committed.tokens == full.tokens[:8]
    after = client.get_cluster("commit")
    assert after.cache_tokens == committed.total_tokens
    assert after.cache_tokens >= before.cache_tokens + committed.prompt_tokens + 8 - 1
    assert after.turn_count > before.turn_count
    # The committed answer is now part of the context: the next greedy run reuses it.
    assert greedy(client, "commit", 4).reused_tokens == after.cache_tokens


def test_fork_is_an_independent_copy(client: Client) -> None:
    client.create_cluster("trunk", labels={"kind": "trunk"})
    client.append("trunk", CONTEXT)
    trunk = client.get_cluster("trunk")
    branch = client.fork("trunk", "branch", labels={"kind": "branch"})
    assert branch.id == "branch"
    assert branch.labels == {"kind": "branch"}
    assert branch.cache_tokens == trunk.cache_tokens
    assert branch.turn_count == trunk.turn_count
    base = greedy(client, "trunk", 12)
    assert greedy(client, "branch", 12).tokens == base.tokens

    client.append("branch", [("user", "Now talk about something else entirely.")])
    assert client.get_cluster("branch").cache_tokens > trunk.cache_tokens
    assert client.get_cluster("trunk").cache_tokens == trunk.cache_tokens
    assert greedy(client, "trunk", 12).tokens == base.tokens

    with pytest.raises(AlreadyExistsError):
        client.fork("trunk", "branch")
    with pytest.raises(NotFoundError):
        client.fork("no-such-trunk", "branch-2")


def test_raw_format(client: Client) -> None:
    client.create_cluster("raw")
    r = client.append("raw", [("user", "Once upon a time")], raw=True)
    assert r.tokens_added > 0
    # Raw generation continues from new text (no chat turn is opened).
    out = client.generate("raw", " there was", max_tokens=6, ignore_eos=True, raw=True)
    assert len(out.tokens) == 6
    assert out.reused_tokens == r.total_tokens


def test_generation_errors_raised_by_the_cluster_reach_the_client(client: Client) -> None:
    client.create_cluster("raw-empty")
    for _ in range(20):
        # Raw format, no text, empty cluster: nothing to generate from.
        with pytest.raises(InvalidArgumentError, match="empty"):
            client.generate("raw-empty", max_tokens=6, raw=True)


def test_raw_generation_without_text_continues_the_cluster(client: Client) -> None:
    client.create_cluster("raw-continue")
    client.append("raw-continue", [("user", "Once upon a time")], raw=True)
    first = client.generate("raw-continue", max_tokens=6, raw=True)
    again = client.generate("raw-continue", max_tokens=6, raw=True)
    assert first.prompt_tokens == 0 and first.reused_tokens > 0
    assert len(first.tokens) > 0 and first.tokens == again.tokens


def test_score_reads_the_model_and_leaves_the_cluster_unchanged(client: Client) -> None:
    client.create_cluster("scored")
    client.append("scored", [("user", "Once upon a time")], raw=True)
    before = client.get_cluster("scored")
    # The model's own greedy continuation is its most likely text, token by token.
    own = client.generate("scored", max_tokens=8, ignore_eos=True, raw=True)
    s = client.score("scored", own.text, raw=True)
    assert s.prompt_tokens == 0 and s.reused_tokens == before.cache_tokens
    assert len(s.logprobs) == len(s.tokens) == len(s.greedy) > 0
    assert all(lp <= 0 for lp in s.logprobs)
    assert abs(s.mean_nll - (-sum(s.logprobs) / len(s.logprobs))) < 1e-4
    assert client.get_cluster("scored").cache_tokens == before.cache_tokens
    with pytest.raises(InvalidArgumentError, match="continuation"):
        client.score("scored", "   ")


def test_evict_persist_and_reload(client: Client) -> None:
    client.create_cluster("cold")
    client.append("cold", CONTEXT)
    base = greedy(client, "cold", 10)
    assert client.get_cluster("cold").residency == "hot"
    client.persist("cold")
    assert client.evict("cold") > 0
    assert client.get_cluster("cold").residency == "cold"
    again = greedy(client, "cold", 10)
    assert again.cache_load.loaded_from_disk
    assert again.cache_load.rebuilt_tokens == 0
    assert again.tokens == base.tokens
    trace = client.scheduler_trace()
    assert trace.decode_steps.get("cold", 0) >= 20
    assert any(s.cluster_id == "cold" and s.kind == "decode" for s in trace.steps)


def test_unknown_cluster_is_not_found(client: Client) -> None:
    calls = {
        "get": lambda: client.get_cluster("ghost"),
        "delete": lambda: client.delete_cluster("ghost"),
        "append": lambda: client.append("ghost", "hello"),
        "generate": lambda: client.generate("ghost", max_tokens=4),
        "stream": lambda: list(client.stream_generate("ghost", max_tokens=4)),
        "evict": lambda: client.evict("ghost"),
    }
    for name, call in calls.items():
        with pytest.raises(NotFoundError) as e:
            call()
        err = e.value
        assert isinstance(err, SemkvError) and isinstance(err, LookupError), name
        assert err.code == grpc.StatusCode.NOT_FOUND, name
        assert err.status == "NOT_FOUND"
        assert "ghost" in err.details, (name, err.details)
        assert isinstance(err.__cause__, grpc.RpcError)


def test_bad_requests_are_invalid_argument(client: Client) -> None:
    for bad in ["../etc", "", "-leading-dash", "x" * 65, "has space", "a/b"]:
        with pytest.raises(InvalidArgumentError) as e:
            client.create_cluster(bad)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "cluster_id" in e.value.details, e.value.details
    with pytest.raises(InvalidArgumentError):
        client.get_cluster("../etc")
    client.create_cluster("valid")
    with pytest.raises(InvalidArgumentError) as e:
        client.append("valid", [("user", "   ")])
    assert "text" in e.value.details
    with pytest.raises(InvalidArgumentError):
        client.append("valid", [])
    with pytest.raises(InvalidArgumentError):
        client.generate("valid", "hi", max_tokens=100_000)
    with pytest.raises(InvalidArgumentError):
        client.create_cluster("labelled", labels={"bad key": "v"})
    # InvalidArgumentError is also a ValueError, like the client's own checks.
    with pytest.raises(ValueError):
        client.create_cluster("../etc")
