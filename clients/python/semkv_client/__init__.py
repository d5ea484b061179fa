"""Python client for semkv's daemon ``semkvd`` (gRPC API ``semkv.v1.SemKv``).

>>> from semkv_client import Client
>>> c = Client("127.0.0.1:50051")                          # doctest: +SKIP
>>> c.create_cluster("notes")                              # doctest: +SKIP
>>> c.append("notes", [("user", "Remember: the code is 1234.")])   # doctest: +SKIP
>>> c.generate("notes", "What is the code?", max_tokens=16).text   # doctest: +SKIP
"""

from semkv_client.client import DEFAULT_ADDR, Client, Prompt, TurnLike
from semkv_client.errors import (
    AlreadyExistsError,
    CancelledError,
    DataLossError,
    DeadlineExceededError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    SemkvError,
    UnavailableError,
)
from semkv_client.models import (
    AppendResult,
    ScoreResult,
    CacheLoad,
    Cluster,
    FinishReason,
    GenerateResult,
    Role,
    SchedulerStep,
    SchedulerTrace,
    ServerInfo,
    Turn,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ADDR",
    "AlreadyExistsError",
    "AppendResult",
    "ScoreResult",
    "CacheLoad",
    "CancelledError",
    "Client",
    "Cluster",
    "DataLossError",
    "DeadlineExceededError",
    "FinishReason",
    "GenerateResult",
    "InternalError",
    "InvalidArgumentError",
    "NotFoundError",
    "Prompt",
    "Role",
    "SchedulerStep",
    "SchedulerTrace",
    "SemkvError",
    "ServerInfo",
    "Turn",
    "TurnLike",
    "UnavailableError",
]
