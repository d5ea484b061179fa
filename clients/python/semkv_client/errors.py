"""Exceptions raised by :class:`semkv_client.Client`: one per gRPC status code the
daemon uses, all subclasses of :class:`SemkvError`."""

from __future__ import annotations

import grpc


class SemkvError(Exception):
    """A failed call. ``code`` is the gRPC status, ``details`` the daemon's message."""

    def __init__(self, code: grpc.StatusCode, details: str, method: str = "") -> None:
        self.code: grpc.StatusCode = code
        self.details = details
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code.name}: {details}")

    @property
    def status(self) -> str:
        """The status code's name, e.g. ``"NOT_FOUND"``."""
        return str(self.code.name)


class InvalidArgumentError(SemkvError, ValueError):
    """INVALID_ARGUMENT: a malformed request (bad cluster id, empty turn, ...)."""


class NotFoundError(SemkvError, LookupError):
    """NOT_FOUND: no such cluster."""


class AlreadyExistsError(SemkvError):
    """ALREADY_EXISTS: the cluster id is taken."""


class UnavailableError(SemkvError):
    """UNAVAILABLE: the daemon is not reachable, shutting down, or its queue is full."""


class DeadlineExceededError(SemkvError, TimeoutError):
    """DEADLINE_EXCEEDED: the call's timeout passed."""


class CancelledError(SemkvError):
    """CANCELLED: the call was cancelled."""


class DataLossError(SemkvError):
    """DATA_LOSS: stored data is damaged beyond rebuilding."""


class InternalError(SemkvError):
    """INTERNAL: a bug or an unexpected failure in the daemon."""


_BY_CODE: dict[grpc.StatusCode, type[SemkvError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.CANCELLED: CancelledError,
    grpc.StatusCode.DATA_LOSS: DataLossError,
    grpc.StatusCode.INTERNAL: InternalError,
}


def from_rpc_error(error: grpc.RpcError, method: str = "") -> SemkvError:
    """The :class:`SemkvError` subclass for a ``grpc.RpcError``."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = error.details() if hasattr(error, "details") else str(error)
    if code is None:
        code = grpc.StatusCode.UNKNOWN
    cls = _BY_CODE.get(code, SemkvError)
    return cls(code, details or "", method)
