"""A synchronous, typed client for the semkv daemon (``semkvd``)."""

from __future__ import annotations

from typing import Any, Generator, Mapping, Optional, Sequence, Tuple, Union

import grpc

from semkv_client._stubs import pb, pb_grpc
from semkv_client.errors import InternalError, SemkvError, UnavailableError, from_rpc_error
from semkv_client.models import (
    AppendResult,
    Cluster,
    GenerateResult,
    Role,
    SchedulerTrace,
    ScoreResult,
    ServerInfo,
    Turn,
)

#: A turn: ``Turn(...)``, ``("user", "text")``, or ``{"role": "user", "content": "text"}``.
TurnLike = Union[Turn, Tuple[Union[Role, str], str], Mapping[str, str]]
#: A prompt: a text (one user turn), or turns.
Prompt = Union[str, Sequence[TurnLike]]

DEFAULT_ADDR = "127.0.0.1:50051"


def _to_turn(t: Any, i: int) -> Any:
    if isinstance(t, Turn):
        return t.to_proto()
    if isinstance(t, pb.Turn):
        return t
    if isinstance(t, Mapping):
        text = t.get("text", t.get("content"))
        if "role" not in t or text is None:
            raise TypeError(f"turn {i}: a mapping needs 'role' and 'text' (or 'content')")
        return Turn(t["role"], text).to_proto()
    if isinstance(t, tuple) and len(t) == 2:
        return Turn(t[0], t[1]).to_proto()
    raise TypeError(
        f"turn {i}: expected Turn, (role, text) or {{'role': ..., 'text': ...}}, "
        f"got {type(t).__name__}"
    )


def _to_turns(prompt: Optional[Prompt]) -> list[Any]:
    if prompt is None:
        return []
    if isinstance(prompt, str):
        return [pb.Turn(role=pb.ROLE_USER, text=prompt)]
    return [_to_turn(t, i) for i, t in enumerate(prompt)]


def _format(raw: bool) -> "pb.TurnFormat":
    return pb.TURN_FORMAT_RAW if raw else pb.TURN_FORMAT_CHAT


class Client:
    """A connection to ``semkvd``.

    >>> with Client("127.0.0.1:50051") as c:          # doctest: +SKIP
    ...     c.create_cluster("physics", labels={"topic": "physics"})
    ...     c.append("physics", [("system", "You are terse."), ("user", "Why is the sky blue?")])
    ...     print(c.generate("physics", max_tokens=64).text)

    Every call raises a :class:`~semkv_client.errors.SemkvError` subclass (carrying the
    gRPC status ``code`` and the daemon's ``details``) when the daemon refuses it.

    Args:
        addr: ``host:port`` of the daemon (an ``http://`` prefix is accepted).
        timeout: default deadline of each call in seconds (None: no deadline).
        channel: an existing ``grpc.Channel`` to use instead of opening one (e.g. a
            secure channel); it is not closed by :meth:`close`.
        options: gRPC channel options for the channel this client opens.
    """

    def __init__(
        self,
        addr: str = DEFAULT_ADDR,
        *,
        timeout: Optional[float] = None,
        channel: Optional[grpc.Channel] = None,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        for scheme in ("http://", "grpc://"):
            if addr.startswith(scheme):
                addr = addr[len(scheme):]
        self.addr = addr.rstrip("/")
        self.timeout = timeout
        self._own_channel = channel is None
        self._channel: grpc.Channel = channel or grpc.insecure_channel(
            self.addr, options=list(options or [])
        )
        self._stub: Any = pb_grpc.SemKvStub(self._channel)  # type: ignore[no-untyped-call]

    # -- plumbing -----------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel (if this client opened it)."""
        if self._own_channel:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.addr!r})"

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel is connected; UnavailableError after ``timeout``."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise UnavailableError(
                grpc.StatusCode.UNAVAILABLE,
                f"semkvd at {self.addr} not reachable within {timeout}s",
            ) from None

    def _timeout(self, timeout: Optional[float]) -> Optional[float]:
        return self.timeout if timeout is None else timeout

    def _call(self, method: str, request: Any, timeout: Optional[float]) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=self._timeout(timeout))
        except grpc.RpcError as e:
            raise from_rpc_error(e, method) from e

    # -- clusters -----------------------------------------------------------------

    def create_cluster(
        self,
        cluster_id: str,
        labels: Optional[Mapping[str, str]] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Cluster:
        """Creates an empty cluster (AlreadyExistsError if the id is taken)."""
        req = pb.CreateClusterRequest(cluster_id=cluster_id, labels=dict(labels or {}))
        return Cluster.from_proto(self._call("CreateCluster", req, timeout))

    def get_cluster(self, cluster_id: str, *, timeout: Optional[float] = None) -> Cluster:
        """Describes one cluster (NotFoundError if unknown)."""
        req = pb.GetClusterRequest(cluster_id=cluster_id)
        return Cluster.from_proto(self._call("GetCluster", req, timeout))

    def list_clusters(
        self,
        labels: Optional[Mapping[str, str]] = None,
        *,
        timeout: Optional[float] = None,
    ) -> list[Cluster]:
        """All clusters, or those carrying every label in ``labels``, ordered by id.

        Follows the daemon's pages (see :meth:`list_clusters_page`); ``timeout`` applies
        to each page's call."""
        clusters: list[Cluster] = []
        token = ""
        while True:
            page, token = self.list_clusters_page(labels, page_token=token, timeout=timeout)
            clusters.extend(page)
            if not token:
                return clusters

    def list_clusters_page(
        self,
        labels: Optional[Mapping[str, str]] = None,
        *,
        page_size: int = 0,
        page_token: str = "",
        timeout: Optional[float] = None,
    ) -> Tuple[list[Cluster], str]:
        """One page of :meth:`list_clusters`: ``(clusters, next_page_token)``.

        At most ``page_size`` clusters (0: the daemon's default, 100; at most 1000)
        after ``page_token`` (empty: the first page; else the token the previous page
        returned). The token returned is empty after the last page."""
        req = pb.ListClustersRequest(
            label_selector=dict(labels or {}), page_size=page_size, page_token=page_token
        )
        reply = self._call("ListClusters", req, timeout)
        return [Cluster.from_proto(c) for c in reply.clusters], reply.next_page_token

    def delete_cluster(self, cluster_id: str, *, timeout: Optional[float] = None) -> None:
        """Deletes a cluster with its turns, tokens and cache."""
        self._call("DeleteCluster", pb.DeleteClusterRequest(cluster_id=cluster_id), timeout)

    def fork(
        self,
        src: str,
        dst: str,
        labels: Optional[Mapping[str, str]] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Cluster:
        """Creates ``dst`` as an independent copy of ``src``'s turns and cache (with
        ``labels`` instead of the source's when given)."""
        req = pb.ForkClusterRequest(
            source_cluster_id=src, new_cluster_id=dst, labels=dict(labels or {})
        )
        return Cluster.from_proto(self._call("ForkCluster", req, timeout))

    def evict(self, cluster_id: str, *, timeout: Optional[float] = None) -> int:
        """Drops the cluster's cache from memory (it stays on disk); bytes freed."""
        req = pb.EvictClusterRequest(cluster_id=cluster_id)
        return int(self._call("EvictCluster", req, timeout).freed_bytes)

    def persist(self, cluster_id: str, *, timeout: Optional[float] = None) -> int:
        """Writes the cluster's cache as one fresh snapshot; its size in bytes."""
        req = pb.PersistClusterRequest(cluster_id=cluster_id)
        return int(self._call("PersistCluster", req, timeout).snapshot_bytes)

    # -- turns and generation -------------------------------------------------------

    def append(
        self,
        cluster_id: str,
        turns: Prompt,
        raw: bool = False,
        *,
        timeout: Optional[float] = None,
    ) -> AppendResult:
        """Appends turns (prefilled into the cluster's cache; durable on return).

        ``turns``: ``[("system", ...), ("user", ...), ("assistant", ...)]``, or a text
        (one user turn). ``raw=True`` tokenizes the texts as they are, without the chat
        template.
        """
        req = pb.AppendTurnsRequest(
            cluster_id=cluster_id, turns=_to_turns(turns), format=_format(raw)
        )
        return AppendResult.from_proto(self._call("AppendTurns", req, timeout))

    def score(
        self,
        cluster_id: str,
        continuation: str,
        prompt: Optional[Prompt] = None,
        *,
        raw: bool = False,
        timeout: Optional[float] = None,
    ) -> ScoreResult:
        """How likely the model finds ``continuation`` after the cluster (and
        ``prompt``): per-token log-probabilities, mean NLL, perplexity, greedy
        agreement. Runs on a copy of the cache: the cluster never changes.

        In chat format (default) the model's turn is opened after ``prompt``, so the
        text is scored as the model's answer; ``raw=True`` joins texts as they are.
        """
        req = pb.ScoreRequest(
            cluster_id=cluster_id,
            turns=_to_turns(prompt),
            format=_format(raw),
            continuation=continuation,
        )
        return ScoreResult.from_proto(self._call("Score", req, timeout))

    @staticmethod
    def _generate_request(
        cluster_id: str,
        prompt: Optional[Prompt],
        *,
        max_tokens: Optional[int],
        temperature: float,
        top_k: int,
        top_p: float,
        repetition_penalty: float,
        repetition_window: int,
        seed: int,
        stop: Union[str, Sequence[str], None],
        commit: bool,
        raw: bool,
        ignore_eos: bool,
    ) -> Any:
        if isinstance(stop, str):
            stop = [stop]
        req = pb.GenerateRequest(
            cluster_id=cluster_id,
            turns=_to_turns(prompt),
            format=_format(raw),
            sampling=pb.SamplingParams(
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                repetition_penalty=repetition_penalty,
                repetition_window=repetition_window,
                seed=seed,
            ),
            stop=list(stop or []),
            commit=commit,
            ignore_eos=ignore_eos,
        )
        if max_tokens is not None:
            req.max_tokens = max_tokens
        return req

    def stream_generate(
        self,
        cluster_id: str,
        prompt: Optional[Prompt] = None,
        *,
        max_tokens: Optional[int] = None,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 0.0,
        repetition_penalty: float = 0.0,
        repetition_window: int = 0,
        seed: int = 0,
        stop: Union[str, Sequence[str], None] = None,
        commit: bool = False,
        raw: bool = False,
        ignore_eos: bool = False,
        timeout: Optional[float] = None,
    ) -> Generator[Union[str, GenerateResult], None, None]:
        """Generates after the cluster's cache, yielding each non-empty text delta
        (``str``) as it is decoded, then the :class:`GenerateResult` summary last.

        Closing the generator early (``break``) cancels the generation on the daemon.
        Arguments are those of :meth:`generate`.
        """
        req = self._generate_request(
            cluster_id,
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            repetition_window=repetition_window,
            seed=seed,
            stop=stop,
            commit=commit,
            raw=raw,
            ignore_eos=ignore_eos,
        )
        call = self._stub.Generate(req, timeout=self._timeout(timeout))
        try:
            for msg in call:
                event = msg.WhichOneof("event")
                if event == "token":
                    if msg.token.text:
                        yield msg.token.text
                elif event == "done":
                    yield GenerateResult.from_proto(msg.done)
                    return
        except grpc.RpcError as e:
            raise from_rpc_error(e, "Generate") from e
        finally:
            call.cancel()  # no-op once the call has ended
        raise InternalError(
            grpc.StatusCode.INTERNAL, "the generation stream ended without a summary", "Generate"
        )

    def generate(
        self,
        cluster_id: str,
        prompt: Optional[Prompt] = None,
        *,
        max_tokens: Optional[int] = None,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 0.0,
        repetition_penalty: float = 0.0,
        repetition_window: int = 0,
        seed: int = 0,
        stop: Union[str, Sequence[str], None] = None,
        commit: bool = False,
        raw: bool = False,
        ignore_eos: bool = False,
        timeout: Optional[float] = None,
    ) -> GenerateResult:
        """Generates after the cluster's cache and returns the summary.

        Args:
            prompt: turns to add before generating (a text is one user turn); None
                continues the cluster as it is. In chat format the model's turn is
                opened after them.
            max_tokens: at most this many tokens (daemon default 128, at most 8192).
            temperature: 0 (default) is greedy; with ``seed`` sampling is reproducible.
            top_k, top_p, repetition_penalty, repetition_window: 0 means off/default.
            stop: string(s) that end the generation (the text is cut before them).
            commit: True appends the prompt and the answer to the cluster; False
                (default) generates on a throwaway copy.
            raw: tokenize the prompt as is, without the chat template.
            ignore_eos: keep generating past end-of-sequence tokens.
        """
        result: Optional[GenerateResult] = None
        for item in self.stream_generate(
            cluster_id,
            prompt,
            max_tokens=max_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            repetition_window=repetition_window,
            seed=seed,
            stop=stop,
            commit=commit,
            raw=raw,
            ignore_eos=ignore_eos,
            timeout=timeout,
        ):
            if isinstance(item, GenerateResult):
                result = item
        assert result is not None  # stream_generate raises otherwise
        return result

    # -- daemon -------------------------------------------------------------------

    def server_info(self, *, timeout: Optional[float] = None) -> ServerInfo:
        """Model, device, memory and queue state of the daemon."""
        return ServerInfo.from_proto(
            self._call("GetServerInfo", pb.GetServerInfoRequest(), timeout)
        )

    def scheduler_trace(self, limit: int = 0, *, timeout: Optional[float] = None) -> SchedulerTrace:
        """The scheduler's most recent steps (0: all that are kept), oldest first."""
        req = pb.GetSchedulerTraceRequest(limit=limit)
        return SchedulerTrace.from_proto(self._call("GetSchedulerTrace", req, timeout))


__all__ = ["Client", "DEFAULT_ADDR", "Prompt", "SemkvError", "TurnLike"]
