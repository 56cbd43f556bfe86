"""The rule against serving a network without authentication by accident.

Without auth (``auth.mode`` "none") every caller is the same anonymous owner: anyone
who can reach the port can run, read and cancel every task. That is fine on loopback
(a developer's machine) and refused anywhere else unless the settings say explicitly
that it is meant (``auth.allow_unauthenticated``, e.g. behind a proxy that checks
callers itself).
"""

from __future__ import annotations

import ipaddress

from switchboard.server.config import Settings


def check_exposure(settings: Settings) -> list[str]:
    """Warnings to log loudly at start; a ValueError when the server must not start.

    Refused: auth off on an address other than loopback, unless
    ``auth.allow_unauthenticated``. Warned: auth off anywhere (it is allowed); bearer
    tokens without TLS on an address other than loopback; client certificates asked
    for but not verified.
    """
    address = settings.address
    local = is_loopback(address)
    warnings = []
    tls = settings.tls
    if tls.client_ca_file is not None and not tls.require_client_cert:
        warnings.append(
            "tls.client_ca_file is set without tls.require_client_cert: client certificates "
            "are asked for but NOT verified (set tls.require_client_cert=true for mTLS)"
        )
    if settings.auth.mode == "none":
        if not local and not settings.auth.allow_unauthenticated:
            raise ValueError(
                f"refusing to serve {address} without authentication: it is not a loopback "
                "address, so anyone who reaches it could run, read and cancel every task. "
                "Set auth.mode=jwt (SWITCHBOARD_AUTH__MODE), listen on loopback "
                "(e.g. SWITCHBOARD_ADDRESS=127.0.0.1:50051), or, if something in front "
                "checks callers, set auth.allow_unauthenticated=true "
                "(SWITCHBOARD_AUTH__ALLOW_UNAUTHENTICATED)."
            )
        warnings.append(
            f"AUTHENTICATION IS OFF (auth.mode=none) on {address}: every caller may run, "
            "read and cancel every task"
        )
    elif not local and not tls.enabled:
        warnings.append(
            f"TLS is off on {address}: bearer tokens cross the network in clear text "
            "unless a proxy or service mesh encrypts it (tls.cert_file, tls.key_file)"
        )
    return warnings


def is_loopback(address: str) -> bool:
    """True when a gRPC listen address is reachable from this host only.

    Loopback IPs (``127.0.0.0/8``, ``[::1]``), ``localhost`` and Unix sockets are;
    wildcard addresses (``[::]``, ``0.0.0.0``), other IPs and other host names are not.
    """
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:  # a host name (it could resolve to anything) or empty (all)
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
