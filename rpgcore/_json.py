r"""Strict JSON for every reader of rpgcore files: one meaning per document.

Python's :func:`json.loads` is lenient where other JSON readers are strict or
disagree: it keeps the last of two equal keys (some readers keep the first),
accepts ``NaN`` and ``Infinity``, turns ``1e999`` into infinity, keeps
integers no double can hold (which other readers refuse) and lets
``"\ud800"`` (half a surrogate pair, which UTF-8 cannot encode) through. A
ring file read by another implementation of the spec must mean the same
thing, so :func:`parse` rejects all of these with a :class:`ValueError` whose
message says what was found; the callers turn it into their own
:mod:`rpgcore.errors` exception.

Example:
    >>> parse('{"a": [1, 2.5, "x"]}')
    {'a': [1, 2.5, 'x']}
    >>> parse('{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    ValueError: the key 'a' appears twice in one object

"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from rpgcore._checks import describe

__all__ = ["MAX_DIGITS", "parse", "reason", "shown"]

MAX_DIGITS = 309
"""Most digits of a JSON integer: ``10**309`` is beyond the largest double."""

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {shown(key)} appears twice in one object")
            seen.add(key)
    return document


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {shown(text)} is too large for a double")
    return number


def _integer(text: str) -> int:
    # Most readers hold every JSON number in a double; one beyond its range is an
    # error there (serde_json: "number out of range"), so it is one here too.
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS or abs(number := int(text)) > sys.float_info.max:
        raise ValueError(f"an integer of {digits} digits is too large for a double")
    return number


def _constant(text: str) -> float:
    raise ValueError(f"{text} is not JSON (JSON has no NaN or infinity)")


def parse(text: str | bytes | bytearray) -> Any:
    """Parse JSON text, rejecting what JSON readers disagree on.

    Args:
        text: the JSON text (bytes must be UTF-8).

    Returns:
        The document, as :func:`json.loads` returns it.

    Raises:
        ValueError: not JSON, not UTF-8, a key twice in one object, ``NaN``,
            ``Infinity``, a number (integers too) beyond the double range, or a
            string with half a surrogate pair.
        RecursionError: the document is nested too deeply.

    Example:
        >>> parse(b'[1e999]')
        Traceback (most recent call last):
        ...
        ValueError: the number '1e999' is too large for a double

    """
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8")  # UnicodeDecodeError is a ValueError
    else:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the text holds half a surrogate pair, which is not Unicode") from None
    document = json.loads(
        text,
        object_pairs_hook=_unique,
        parse_float=_finite,
        parse_int=_integer,
        parse_constant=_constant,
    )
    if _SURROGATE_ESCAPE.search(text):
        # Escaped pairs ("\ud83d\ude00") decode to one character; a half pair stays
        # a surrogate, which encoding the decoded document back reveals.
        try:
            json.dumps(document, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "a string holds an escaped half surrogate pair, which is not Unicode"
            ) from None
    return document


def shown(value: object) -> str:
    """``repr(value)`` for an error message: shortened, and safe for any value.

    Args:
        value: anything, possibly huge or deeply nested.

    Returns:
        At most about 200 characters.

    Example:
        >>> shown("x" * 1000)[-5:]
        'xx...'

    """
    try:
        return describe(value)
    except RecursionError:
        return f"a deeply nested {type(value).__name__}"


def reason(error: BaseException) -> str:
    """The first 200 characters of an error's message, for wrapping it in another.

    Args:
        error: the exception.

    Returns:
        Its message, shortened.

    Example:
        >>> reason(ValueError("x" * 300))[-4:]
        'x...'

    """
    text = str(error)
    return text if len(text) <= 200 else text[:200] + "..."
