"""Errors as the API answers them: every non-2xx response is a ``Problem`` (422s a
``ValidationProblem``), whatever raised it."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.models import FieldProblem, Problem, ValidationProblem

log = logging.getLogger("api")

#: Both ways of sending a key, per RFC 9110's challenge syntax.
WWW_AUTHENTICATE = {"WWW-Authenticate": 'ApiKey realm="shopstream", Bearer realm="shopstream"'}

_SLUGS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An answer other than success, raised anywhere a request is handled."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: list[FieldProblem] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.details = details


def invalid(loc: list[str | int], message: str, kind: str = "value_error") -> ApiError:
    """A 422 for one input that passed its declared constraints but is still wrong."""
    return ApiError(
        422,
        f"{'.'.join(map(str, loc))}: {message}",
        details=[FieldProblem(loc=loc, message=message, type=kind)],
    )


def _json(status: int, body: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    slug = _SLUGS.get(exc.status, "error")
    if exc.details is not None:
        return _json(
            exc.status, ValidationProblem(error=slug, message=exc.message, details=exc.details)
        )
    return _json(exc.status, Problem(error=slug, message=exc.message), exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = []
    for error in exc.errors():
        loc: list[str | int] = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
        details.append(
            FieldProblem(
                loc=loc, message=str(error.get("msg", "")), type=str(error.get("type", ""))
            )
        )
    summary = "; ".join(f"{'.'.join(map(str, d.loc))}: {d.message}" for d in details[:3])
    if len(details) > 3:
        summary += f" (and {len(details) - 3} more)"
    return _json(422, ValidationProblem(error="invalid_request", message=summary, details=details))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot even decode; any other bad input is a 422,
        # so this is one too.
        problem = FieldProblem(loc=["body"], message=str(exc.detail), type="body_unreadable")
        return _json(
            422,
            ValidationProblem(
                error="invalid_request", message=f"body: {exc.detail}", details=[problem]
            ),
        )
    headers: Any = getattr(exc, "headers", None)
    return _json(
        exc.status_code,
        Problem(error=_SLUGS.get(exc.status_code, "error"), message=str(exc.detail)),
        headers,
    )


async def _database_down(_: Request, exc: Exception) -> JSONResponse:
    log.warning("ops database unavailable: %s", exc)
    return _json(
        503,
        Problem(error="unavailable", message="the ops database is unreachable; try again shortly"),
        {"Retry-After": "5"},
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    return _json(500, Problem(error="internal", message="internal error; it has been logged"))


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the documented shape."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(psycopg.OperationalError, _database_down)
    app.add_exception_handler(PoolTimeout, _database_down)
    app.add_exception_handler(Exception, _unexpected)


_DESCRIPTIONS: dict[int, tuple[str, type[Problem], dict[str, Any]]] = {
    401: (
        "No API key, or not a valid one",
        Problem,
        {"WWW-Authenticate": {"description": "How to authenticate", "schema": {"type": "string"}}},
    ),
    403: ("The key lacks the scope this operation needs", Problem, {}),
    404: ("No such resource", Problem, {}),
    409: ("The resource's state does not allow this", Problem, {}),
    422: ("Invalid input: every problem found", ValidationProblem, {}),
    429: (
        "The key's rate limit is exceeded",
        Problem,
        {
            "Retry-After": {
                "description": "Whole seconds to wait (at least 1)",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    ),
    503: ("The ops database is unreachable", Problem, {}),
}


def documented(*statuses: int, by_reference: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries for these error statuses.

    ``by_reference``: name the JSON schema explicitly, for a route whose own media type is
    not JSON (FastAPI would file a ``model`` under it); other routes register the models.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, model, headers = _DESCRIPTIONS[status]
        if by_reference:
            schema = {"$ref": f"#/components/schemas/{model.__name__}"}
            out[status] = {
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }
        else:
            out[status] = {"description": description, "model": model}
        if headers:
            out[status]["headers"] = headers
    return out


#: What any authenticated route can answer besides success.
AUTHENTICATED = (401, 403, 429)
