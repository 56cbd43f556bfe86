"""What the sync and async clients share: settings, call options, error translation."""

from __future__ import annotations

import abc
import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc

from switchboard.client._watch import RetryPolicy
from switchboard.client.errors import error_from_rpc

#: The environment variable naming the server when no address is given.
ADDRESS_ENV = "SWITCHBOARD_ADDRESS"
#: The environment variable ``swb`` reads a bearer token from (``--token`` wins).
TOKEN_ENV = "SWITCHBOARD_TOKEN"
_AUTHORIZATION = "authorization"
#: The server address when neither an argument nor the environment names one.
DEFAULT_ADDRESS = "localhost:50051"

#: Call metadata sent with every call: a mapping or ``(key, value)`` pairs.
MetadataLike = Mapping[str, str] | Sequence[tuple[str, str | bytes]]


def default_address() -> str:
    """``$SWITCHBOARD_ADDRESS``, or ``localhost:50051`` when it is unset or empty."""
    return os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS


@contextlib.contextmanager
def typed_errors() -> Iterator[None]:
    """Re-raise a failed call (sync or async) as its typed :class:`SwitchboardError`."""
    try:
        yield
    except grpc.RpcError as error:
        raise error_from_rpc(error) from error


class ClientBase(abc.ABC):
    """Settings common to :class:`Client` and :class:`AsyncClient`.

    Args:
        address: ``host:port`` of the server (any gRPC target, e.g. ``dns:///...``);
            default ``$SWITCHBOARD_ADDRESS`` or ``localhost:50051``.
        tls: use a TLS channel with the system's root certificates.
        root_certificates: PEM root certificates to verify the server with
            (implies TLS).
        credentials: channel credentials to use as they are (implies TLS; e.g.
            mutual TLS via ``grpc.ssl_channel_credentials(...)``).
        token: a bearer token (JWT) sent with every call as
            ``authorization: Bearer <token>``; see also :meth:`login`.
        metadata: sent with every call, e.g. ``{"x-tenant": "blue"}``.
        timeout: default deadline in seconds for unary calls (Execute included:
            a deadline shorter than the task's timeout ends it TIMED_OUT); None
            means no deadline. Streams (``watch``, ``batch_execute``) only get the
            deadline passed to them.
        options: gRPC channel options, e.g. ``[("grpc.max_receive_message_length", ...)]``.
        watch_retry: how ``watch`` reconnects after UNAVAILABLE.

    """

    def __init__(
        self,
        address: str | None = None,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
        metadata: MetadataLike | None = None,
        timeout: float | None = None,
        options: Sequence[tuple[str, Any]] = (),
        watch_retry: RetryPolicy | None = None,
    ) -> None:
        self.address = address or default_address()
        if credentials is None and (tls or root_certificates is not None):
            credentials = grpc.ssl_channel_credentials(root_certificates)
        self._credentials = credentials
        pairs = metadata.items() if isinstance(metadata, Mapping) else (metadata or ())
        self._metadata: tuple[tuple[str, str | bytes], ...] = tuple(pairs)
        if token:
            if any(key.lower() == _AUTHORIZATION for key, _ in self._metadata):
                raise ValueError("give the token either as token= or in metadata, not both")
            self.use_token(token)
        self.timeout = timeout
        self._options: tuple[tuple[str, Any], ...] = tuple(options)
        self.watch_retry = watch_retry or RetryPolicy()
        self._open_channel()

    def use_token(self, token: str | None) -> None:
        """Send ``token`` as the bearer token of every later call (None: no token)."""
        kept = tuple(pair for pair in self._metadata if pair[0].lower() != _AUTHORIZATION)
        bearer = ((_AUTHORIZATION, f"Bearer {token}"),) if token else ()
        self._metadata = kept + bearer

    @abc.abstractmethod
    def _open_channel(self) -> None:
        """Create the channel and the stubs (sync or ``grpc.aio``, per subclass)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    def _unary_options(self, timeout: float | None) -> dict[str, Any]:
        """Keyword arguments of a unary call: the default deadline unless overridden."""
        return {"timeout": self.timeout if timeout is None else timeout, "metadata": self._metadata}

    def _stream_options(self, timeout: float | None) -> dict[str, Any]:
        """Keyword arguments of a streaming call: no deadline unless one is given."""
        return {"timeout": timeout, "metadata": self._metadata}
