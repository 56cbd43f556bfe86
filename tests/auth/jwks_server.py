"""An identity provider's JWKS endpoint on loopback, which a test can rotate, break and hold."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.auth.tokens import PrivateKey


def jwk(key: PrivateKey, kid: str, **fields: Any) -> dict[str, Any]:
    """The public JWK of ``key`` with id ``kid`` (and ``fields``, e.g. alg or use)."""
    if isinstance(key, rsa.RSAPrivateKey):
        entry: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        entry = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return entry | {"kid": kid} | fields


class JwksServer:
    """Serves ``document`` as JSON (or ``body`` raw) with ``status``; counts requests.

    While ``gate`` is set to an unset event, responses wait for it.
    """

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.document: Any = {"keys": list(keys)}
        self.body: bytes | None = None
        self.status = 200
        self.gate: asyncio.Event | None = None
        self.requests = 0
        self._counted = asyncio.Condition()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/.well-known/jwks.json"

    async def __aenter__(self) -> JwksServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def wait_for_requests(self, count: int) -> None:
        """Until ``count`` requests in all have arrived."""
        async with self._counted:
            await self._counted.wait_for(lambda: self.requests >= count)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            async with self._counted:
                self.requests += 1
                self._counted.notify_all()
            if self.gate is not None:
                await self.gate.wait()
            body = self.body if self.body is not None else json.dumps(self.document).encode()
            head = (
                f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
