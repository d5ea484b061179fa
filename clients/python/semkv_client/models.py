"""Plain, typed results of :class:`semkv_client.Client` calls."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, List

from semkv_client._stubs import pb


class Role(str, enum.Enum):
    """Who said a turn."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"

    @classmethod
    def parse(cls, value: "Role | str") -> "Role":
        if isinstance(value, Role):
            return value
        name = str(value).strip().lower()
        if name == "model":  # Gemma's name for the assistant
            name = "assistant"
        try:
            return cls(name)
        except ValueError:
            raise ValueError(
                f"unknown role {value!r}: use 'system', 'user' or 'assistant'"
            ) from None

    def to_proto(self) -> "pb.Role":
        return {
            Role.SYSTEM: pb.ROLE_SYSTEM,
            Role.USER: pb.ROLE_USER,
            Role.ASSISTANT: pb.ROLE_ASSISTANT,
        }[self]


@dataclass(frozen=True)
class Turn:
    """One message: ``Turn("user", "Hello")``."""

    role: Role | str
    text: str

    def to_proto(self) -> Any:
        return pb.Turn(role=Role.parse(self.role).to_proto(), text=self.text)


class FinishReason(str, enum.Enum):
    """Why a generation ended."""

    UNSPECIFIED = "unspecified"
    EOS = "eos"
    STOP_STRING = "stop_string"
    LENGTH = "length"
    CANCELLED = "cancelled"

    @classmethod
    def from_proto(cls, value: int) -> "FinishReason":
        table: Dict[int, FinishReason] = {
            pb.FINISH_REASON_EOS: cls.EOS,
            pb.FINISH_REASON_STOP_STRING: cls.STOP_STRING,
            pb.FINISH_REASON_LENGTH: cls.LENGTH,
            pb.FINISH_REASON_CANCELLED: cls.CANCELLED,
        }
        return table.get(value, cls.UNSPECIFIED)


@dataclass(frozen=True)
class Cluster:
    """A cluster's description."""

    id: str
    labels: Dict[str, str]
    created_unix_ms: int
    cache_tokens: int
    turn_count: int
    #: "hot" (in memory), "cold" (on disk only) or "unspecified".
    residency: str
    cache_bytes: int
    rebuilds: int

    @classmethod
    def from_proto(cls, m: Any) -> "Cluster":
        residency = {pb.RESIDENCY_HOT: "hot", pb.RESIDENCY_COLD: "cold"}.get(
            m.residency, "unspecified"
        )
        return cls(
            id=m.id,
            labels=dict(m.labels),
            created_unix_ms=m.created_unix_ms,
            cache_tokens=m.cache_tokens,
            turn_count=m.turn_count,
            residency=residency,
            cache_bytes=m.cache_bytes,
            rebuilds=m.rebuilds,
        )


@dataclass(frozen=True)
class CacheLoad:
    """How a cluster's cache was brought into memory for a request."""

    loaded_from_disk: bool
    rebuilt_tokens: int
    rebuild_reason: str
    load_ms: float

    @classmethod
    def from_proto(cls, m: Any) -> "CacheLoad":
        return cls(m.loaded_from_disk, m.rebuilt_tokens, m.rebuild_reason, m.load_ms)


@dataclass(frozen=True)
class ScoreResult:
    """How likely the model found a text (teacher-forced; nothing sampled)."""

    tokens: List[int]
    logprobs: List[float]
    greedy: List[bool]
    total_nll: float
    mean_nll: float
    perplexity: float
    greedy_agreement: float
    prompt_tokens: int
    reused_tokens: int
    queue_ms: float
    model_ms: float
    cache_load: CacheLoad

    @classmethod
    def from_proto(cls, m: Any) -> "ScoreResult":
        return cls(
            tokens=list(m.tokens),
            logprobs=list(m.logprobs),
            greedy=list(m.greedy),
            total_nll=m.total_nll,
            mean_nll=m.mean_nll,
            perplexity=m.perplexity,
            greedy_agreement=m.greedy_agreement,
            prompt_tokens=m.prompt_tokens,
            reused_tokens=m.reused_tokens,
            queue_ms=m.queue_ms,
            model_ms=m.model_ms,
            cache_load=CacheLoad.from_proto(m.cache_load),
        )


@dataclass(frozen=True)
class AppendResult:
    """What an append did."""

    tokens_added: int
    total_tokens: int
    prefill_ms: float
    queue_ms: float
    persist_ms: float
    cache_load: CacheLoad

    @classmethod
    def from_proto(cls, m: Any) -> "AppendResult":
        return cls(
            tokens_added=m.tokens_added,
            total_tokens=m.total_tokens,
            prefill_ms=m.prefill_ms,
            queue_ms=m.queue_ms,
            persist_ms=m.persist_ms,
            cache_load=CacheLoad.from_proto(m.cache_load),
        )


@dataclass(frozen=True)
class GenerateResult:
    """The summary of a generation (the last message of the stream)."""

    #: The whole generated text (stop string removed).
    text: str
    tokens: List[int]
    finish_reason: FinishReason
    #: Tokens of the new prompt that were prefilled.
    prompt_tokens: int
    #: Tokens already in the cluster's cache that were reused without prefill.
    reused_tokens: int
    time_to_first_token_ms: float
    tokens_per_second: float
    queue_ms: float
    #: Tokens in the cluster's cache afterwards.
    total_tokens: int
    committed: bool
    cache_load: CacheLoad

    @classmethod
    def from_proto(cls, m: Any) -> "GenerateResult":
        return cls(
            text=m.text,
            tokens=list(m.tokens),
            finish_reason=FinishReason.from_proto(m.finish_reason),
            prompt_tokens=m.prompt_tokens,
            reused_tokens=m.reused_tokens,
            time_to_first_token_ms=m.time_to_first_token_ms,
            tokens_per_second=m.tokens_per_second,
            queue_ms=m.queue_ms,
            total_tokens=m.total_tokens,
            committed=m.committed,
            cache_load=CacheLoad.from_proto(m.cache_load),
        )


@dataclass(frozen=True)
class ServerInfo:
    """Model, device, memory and queue state of the daemon."""

    version: str
    model: str
    model_fingerprint: str
    device: str
    backend: str
    cache_bytes: int
    max_cache_bytes: int
    hot_clusters: int
    known_clusters: int
    queue_depth: int
    queue_capacity: int
    store_bytes: int
    process_rss_bytes: int

    @classmethod
    def from_proto(cls, m: Any) -> "ServerInfo":
        return cls(
            version=m.version,
            model=m.model,
            model_fingerprint=m.model_fingerprint,
            device=m.device,
            backend=m.backend,
            cache_bytes=m.cache_bytes,
            max_cache_bytes=m.max_cache_bytes,
            hot_clusters=m.hot_clusters,
            known_clusters=m.known_clusters,
            queue_depth=m.queue_depth,
            queue_capacity=m.queue_capacity,
            store_bytes=m.store_bytes,
            process_rss_bytes=m.process_rss_bytes,
        )


@dataclass(frozen=True)
class SchedulerStep:
    """One step of the daemon's scheduler."""

    seq: int
    cluster_id: str
    #: "prefill", "decode" or "unspecified".
    kind: str
    tokens: int


@dataclass(frozen=True)
class SchedulerTrace:
    steps: List[SchedulerStep] = field(default_factory=list)
    #: Decode steps ever run, per cluster.
    decode_steps: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, m: Any) -> "SchedulerTrace":
        kinds = {pb.STEP_KIND_PREFILL: "prefill", pb.STEP_KIND_DECODE: "decode"}
        return cls(
            steps=[
                SchedulerStep(s.seq, s.cluster_id, kinds.get(s.kind, "unspecified"), s.tokens)
                for s in m.steps
            ],
            decode_steps=dict(m.decode_steps),
        )


__all__ = [
    "AppendResult",
    "CacheLoad",
    "Cluster",
    "FinishReason",
    "GenerateResult",
    "Role",
    "SchedulerStep",
    "SchedulerTrace",
    "ServerInfo",
    "Turn",
]
