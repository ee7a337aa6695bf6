"""Cursor pagination shared by the list routes: the ``limit`` and ``cursor`` parameters and
the decoding of a cursor into the position it stands for."""

# No `from __future__ import annotations`: FastAPI evaluates the annotations built here.

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Query

from api import queries
from api.problems import invalid
from shopstream.settings import ApiSettings

T = TypeVar("T")

#: The previous page's ``next_cursor``, opaque to the client.
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="The previous page's next_cursor, as is"),
]


def limit_type(settings: ApiSettings) -> Any:
    """The ``limit`` parameter, bounded by ``SHOPSTREAM_API_MAX_PAGE_SIZE`` (422 above it)."""
    return Annotated[int, Query(ge=1, le=settings.api_max_page_size, description="Page size")]


def decode(cursor: str | None, parse: Callable[[str], T]) -> T | None:
    """The position a cursor stands for, or None for the first page; 422 for a cursor the
    list did not issue (tampered, or from another list)."""
    if cursor is None:
        return None
    try:
        return parse(cursor)
    except queries.BadCursor:
        raise invalid(["query", "cursor"], "not a cursor this list issued") from None
