"""Whether this host would let a server listen on an address, asked before gRPC binds.

gRPC says only "Failed to bind"; a probe socket gets the OS's reason ("Address
already in use", "Cannot assign requested address").
"""

from __future__ import annotations

import socket


def bind_problem(address: str, *, reuse_port: bool) -> str | None:
    """Why listening on ``address`` would fail; None when it would not.

    Without ``reuse_port`` any listener is a problem, another supervisor's workers
    included: the supervisor's check before it starts any. With it, only listeners
    that do not share (those without SO_REUSEPORT, or another user's) are: a worker
    joining its siblings. SO_REUSEADDR keeps closed connections in TIME_WAIT from
    counting. Like gRPC, an address is usable when any address it resolves to binds.
    """
    host, _, port = address.rpartition(":")
    try:
        candidates = socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, ValueError) as exc:
        return str(exc)
    problems = []
    for family, kind, proto, _, sockaddr in candidates:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if reuse_port:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                probe.bind(sockaddr)
        except OSError as exc:
            problems.append(exc.strerror or str(exc))
        else:
            return None
    return problems[0]
