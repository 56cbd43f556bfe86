"""JSON-lines logging: one object per record, extras and tracebacks included."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from switchboard.server.telemetry import JsonFormatter, setup_logging


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "switchboard.test", logging.WARNING, __file__, 1, "a %s", ("b",), None
    )
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_json_object() -> None:
    line = JsonFormatter().format(_record(port=50051, error_id="e1"))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "switchboard.test"
    assert entry["message"] == "a b"
    assert entry["port"] == 50051
    assert entry["error_id"] == "e1"
    assert entry["time"].endswith("+00:00")
    assert "exception" not in entry


def test_an_exception_is_kept_whole_on_one_line() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    exception = json.loads(line)["exception"]
    assert exception.startswith("Traceback")
    assert "ValueError: bad\nthing" in exception


def test_setup_sends_json_to_stderr_at_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("warning")
        logging.getLogger("switchboard.test").info("hidden")
        logging.getLogger("switchboard.test").warning("shown")
        lines = capsys.readouterr().err.splitlines()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert [json.loads(line)["message"] for line in lines] == ["shown"]
