"""The ``calculator`` built-in: arithmetic on numbers, evaluated by walking the AST.

Nothing is ever passed to ``eval``: the expression is parsed, and only number literals,
``+ - * / // % **``, unary ``+``/``-`` and parentheses are accepted. Sizes are bounded
so a short expression cannot make a huge number (``9**9**9``) and stall the server.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

Number = int | float

MAX_EXPRESSION_CHARS = 1_000
# Integers beyond this many bits (about 1,200 decimal digits) are refused.
MAX_INT_BITS = 4_096
MAX_EXPONENT = 4_096

_BINARY: dict[type[ast.operator], Callable[[Any, Any], object]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], object]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def evaluate(expression: str) -> Number:
    """The value of an arithmetic ``expression``; ``ValueError`` when it is not one."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        return _value(ast.parse(expression.strip(), mode="eval").body)
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ValueError("the expression is nested too deeply") from None
    except ZeroDivisionError:
        raise ValueError("division by zero") from None
    except OverflowError:
        raise ValueError("the result is too large") from None


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression and return its value.

    Args:
        expression: Numbers with + - * / // % ** and parentheses, e.g. "(2 + 3) * 4 ** 2".

    """
    return repr(evaluate(expression))


def _value(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_value(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _bounded(_BINARY[type(node.op)](left, right))
    raise ValueError(f"unsupported expression: {ast.unparse(node)!r}")


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse a power before computing it when its size would pass the bounds."""
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"exponent larger than {MAX_EXPONENT}")
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if exact and (abs(int(base)).bit_length() - 1) * exponent > MAX_INT_BITS:
        raise ValueError("the result is too large")


def _bounded(value: object) -> Number:
    """``value`` if it is a real number within the bounds."""
    if isinstance(value, complex):  # a negative number to a fractional power
        raise ValueError("the result is not a real number")
    # bool is an int subclass, and True + True is not arithmetic anyone meant.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise ValueError("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("the result is too large")
    return value
