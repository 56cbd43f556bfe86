"""The calculator and current_time built-ins, called as plain functions."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from switchboard.server.agents.tools.calculator import calculator, evaluate
from switchboard.server.agents.tools.clock import current_time


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(2 + 3) * 4 ** 2", 80),
        ("7 // 2", 3),
        ("7 % 3", 1),
        ("-2 ** 2", -4),
        ("--3", 3),
        ("+4", 4),
        ("6 / 4", 1.5),
        ("2 ** -2", 0.25),
        ("1.5e3 - 0.5", 1499.5),
        ("1_000 + 0x10", 1016),
        ("  (((1)))  ", 1),
    ],
)
def test_the_calculator_does_arithmetic(expression: str, value: float) -> None:
    assert evaluate(expression) == value
    assert calculator(expression) == repr(value)


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("", "not an arithmetic expression"),
        ("2 +", "not an arithmetic expression"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("x + 1", "unsupported expression: 'x'"),
        ("abs(-1)", "unsupported expression"),
        ('__import__("os").system("true")', "unsupported expression"),
        ("(1).real", "unsupported expression"),
        ("[1, 2]", "unsupported expression"),
        ("1 if 1 else 2", "unsupported expression"),
        ("1 < 2", "unsupported expression"),
        ("~1", "unsupported expression"),
        ("True + 1", "not a number: True"),
        ("'a' * 3", "not a number: 'a'"),
        ("2j", "not a real number"),
        ("(-8) ** 0.5", "not a real number"),
        ("lambda: 1", "unsupported expression"),
    ],
)
def test_the_calculator_refuses_what_is_not_arithmetic(expression: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        evaluate(expression)


@pytest.mark.parametrize(
    "expression",
    ["9 ** 9 ** 9", "2 ** 5000", "2 ** 4096", "10 ** 1000 * 10 ** 1000", "2.0 ** 5000.5"],
)
def test_the_calculator_refuses_huge_numbers_without_computing_them(expression: str) -> None:
    with pytest.raises(ValueError, match=r"too large|exponent larger"):
        evaluate(expression)


@pytest.mark.parametrize(
    "expression", ["1e308 * 10", "10.0 ** 400", "2 ** 4000 / 1e-300", "10 ** 400 * 1.0"]
)
def test_the_calculator_refuses_float_overflow(expression: str) -> None:
    with pytest.raises(ValueError, match="too large"):
        evaluate(expression)


def test_the_calculator_refuses_long_and_deep_expressions() -> None:
    with pytest.raises(ValueError, match="longer than 1000"):
        evaluate("1+" * 600 + "1")
    with pytest.raises(ValueError, match=r"nested|not an arithmetic expression"):
        evaluate("(" * 400 + "1" + ")" * 400)


def _parse(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None
    return parsed


def test_current_time_is_utc_iso8601_by_default() -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    text = current_time()

    assert text.endswith("+00:00")
    assert before <= _parse(text) <= datetime.now(UTC)
    assert current_time(None).endswith("+00:00")


def test_current_time_in_a_time_zone_is_the_same_instant() -> None:
    tokyo, utc = _parse(current_time("Asia/Tokyo")), _parse(current_time())

    assert tokyo.utcoffset() == timedelta(hours=9)
    assert abs(tokyo - utc) < timedelta(minutes=1)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/abs", "UTC+1"])
def test_current_time_refuses_an_unknown_time_zone(zone: str) -> None:
    with pytest.raises(ValueError, match=r"^unknown time zone"):
        current_time(zone)
