"""Opaque ListTasks page tokens: a keyset cursor bound to the filter it was made for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime

from switchboard.server.domain import FieldViolation, InvalidArgument, Task

_VERSION = 1


def filter_key(*parts: str) -> str:
    """A short digest of a listing's filter, so a token is not reused with another one."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def encode_token(last: Task, key: str) -> str:
    """The token for the page after ``last`` under filter ``key``."""
    body = {"v": _VERSION, "t": last.create_time.isoformat(), "id": last.id, "f": key}
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, key: str) -> tuple[datetime, str] | None:
    """The keyset cursor in ``token`` (None for the first page), or INVALID_ARGUMENT."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        cursor = (datetime.fromisoformat(body["t"]), str(body["id"]))
        valid = body["v"] == _VERSION and cursor[0].tzinfo is not None
        same_filter = body["f"] == key
    except (binascii.Error, ValueError, KeyError, TypeError):
        valid, same_filter = False, True
    if not valid:
        raise InvalidArgument([FieldViolation("page_token", "is not a valid page token")])
    if not same_filter:
        raise InvalidArgument([FieldViolation("page_token", "was issued for a different filter")])
    return cursor
