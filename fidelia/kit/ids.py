"""Ids from the wire. Database ids are 64-bit: a larger number in a path or a body is
refused as malformed (SQLite cannot even bind it), and a numeric reference is read only
when it is plain ASCII digits that fit (``'²'.isdigit()`` is true, ``int('²')`` fails)."""

from typing import Annotated

from fastapi import Path
from pydantic import Field

MAX_ID = 2**63 - 1

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdField = Annotated[int, Field(ge=1, le=MAX_ID)]


def as_id(text: str) -> int | None:
    """'42' -> 42; anything that is not a 64-bit id made of ASCII digits -> None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None
