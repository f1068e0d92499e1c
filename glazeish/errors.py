"""One line per problem: how an exception or a warning becomes the line a user reads."""

from __future__ import annotations


def first_line(e: object) -> str:
    """The first line of an exception's (or a warning's) message, or its type name when it has none."""
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
