"""The HTTP API around one Predictor: /v1/predict (micro-batched), /v1/health, /v1/info, the web page.

`create_app` is pure wiring: the Predictor does the work (the same code path as `encoderkit
predict`), `batcher` groups requests, `limits` guards the door. Bad input is always a 4xx with
one `{"error": "<field>: <what>"}` body, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib import resources
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from encoderkit.errors import UserError
from encoderkit.serving.batcher import MicroBatcher, QueueFull
from encoderkit.serving.limits import BodyLimit, error_response, token_ok
from encoderkit.serving.settings import ServeSettings
from encoderkit.tasks import get_task
from encoderkit.version import __version__

log = logging.getLogger("encoderkit.serving")
bearer = HTTPBearer(auto_error=False, description="needed when the server was started with a token")


class ApiError(Exception):
    """A 4xx/5xx answer with a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def create_app(predictor: Any, settings: ServeSettings, model_name: str = "") -> FastAPI:
    """A FastAPI app serving `predictor` (anything with `task`, `meta`, `validate_rows`, `predict_rows`)."""
    batcher = MicroBatcher(
        predictor.predict_rows, settings.max_batch, settings.batch_wait_ms / 1000, settings.max_queue
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    # No /docs: Swagger UI loads from a CDN, and the server must work offline. /openapi.json stays.
    app = FastAPI(title="encoderkit", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    _add_error_handlers(app)
    guarded = [Depends(token_check(settings.token))]
    _add_predict(app, predictor, settings, batcher, guarded)
    _add_info(app, predictor, settings, batcher, guarded, model_name)
    return app


def token_check(token: str | None) -> Any:
    """A dependency that lets a request through when no token is set or it carries the right one."""

    async def authorized(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if token is None:
            return
        given = f"Bearer {credentials.credentials}" if credentials else None
        if not token_ok(given, token):
            raise ApiError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    return authorized


def _add_predict(
    app: FastAPI, predictor: Any, settings: ServeSettings, batcher: MicroBatcher, guarded: list[Any]
) -> None:
    task = get_task(predictor.task)
    request_body, response_body = task.request_body, task.response_body

    async def predict(body: Any) -> dict[str, Any]:
        rows = [item.model_dump(exclude_unset=True) for item in body.inputs]
        check_sizes(rows, settings)
        try:
            predictor.validate_rows(rows)  # cheap checks now, so a bad input never fails a whole batch
            outputs = await asyncio.wait_for(batcher.submit(rows), settings.timeout_s)
        except UserError as exc:
            raise ApiError(422, str(exc)) from None
        except QueueFull as exc:
            raise ApiError(503, f"server busy: {exc}", {"Retry-After": "1"}) from None
        except TimeoutError:
            message = f"no answer within the server's timeout of {settings.timeout_s:g} s"
            raise ApiError(504, message) from None
        return {"task": predictor.task, "predictions": outputs}

    # The body type depends on the task, so it is set here (FastAPI reads it from the annotations).
    predict.__annotations__["body"] = request_body
    app.post(
        "/v1/predict",
        dependencies=guarded,
        response_model=response_body,
        response_model_exclude_unset=True,
        summary="predict a batch of inputs (the same outputs as `encoderkit predict`)",
    )(predict)


def _add_info(
    app: FastAPI,
    predictor: Any,
    settings: ServeSettings,
    batcher: MicroBatcher,
    guarded: list[Any],
    model_name: str,
) -> None:
    @app.get("/v1/health", summary="liveness")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/info", summary="task, model, labels, limits and batching counters", dependencies=guarded)
    async def info() -> dict[str, Any]:
        limits = {k: getattr(settings, k) for k in ("max_inputs", "max_chars", "max_body_bytes", "timeout_s")}
        batching = {"max_batch": settings.max_batch, "wait_ms": settings.batch_wait_ms}
        return model_info(predictor, model_name) | {
            "limits": limits,
            "batching": batching | asdict(batcher.stats),
        }

    html = render_page(predictor, auth=settings.token is not None)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(html)


def check_sizes(rows: list[dict[str, Any]], settings: ServeSettings) -> None:
    """413 for more inputs per request, or longer texts, than the server accepts."""
    if len(rows) > settings.max_inputs:
        raise ApiError(413, f"inputs: {len(rows)} inputs, more than the limit of {settings.max_inputs}")
    for i, row in enumerate(rows):
        for key, value in row.items():
            if isinstance(value, str) and len(value) > settings.max_chars:
                too_long = f"{len(value)} characters, more than the limit of {settings.max_chars}"
                raise ApiError(413, f"inputs[{i}].{key}: {too_long}")


def model_info(predictor: Any, model_name: str) -> dict[str, Any]:
    meta = predictor.meta
    out: dict[str, Any] = {
        "task": predictor.task,
        "model": model_name,
        "labels": predictor.label_names,
        "max_length": meta.get("max_length"),
        "version": __version__,
        "pairs": predictor.pairs,
    }
    return out | get_task(predictor.task).info(meta)


def render_page(predictor: Any, auth: bool) -> str:
    """page.html with what its script needs to draw the right form (no request needed, no secrets)."""
    config = {
        "task": predictor.task,
        # The form the page draws: the task's own, or another task's (a masked LM: fill-mask).
        "form": get_task(predictor.task).info(predictor.meta).get("form", predictor.task),
        "auth": auth,
        "pairs": predictor.pairs,
        "mask_token": predictor.meta.get("mask_token"),
        "version": __version__,
    }
    page = (resources.files("encoderkit") / "serving" / "page.html").read_text(encoding="utf-8")
    # `<` escaped so no value can close the <script> element it is embedded in.
    return page.replace("{{CONFIG}}", json.dumps(config).replace("<", "\\u003c"))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        bad_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if bad_json is not None:
            where = bad_json.get("loc", ("body", "?"))[-1]
            reason = (bad_json.get("ctx") or {}).get("error", "invalid")
            return error_response(400, f"malformed JSON body at character {where}: {reason}")
        messages = [f"{field_path(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors[:3]]
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        return error_response(422, "; ".join(messages) + more)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = f"{request.url.path}: not found" if exc.status_code == 404 else str(exc.detail)
        return error_response(exc.status_code, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error")
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log")


def field_path(loc: Any) -> str:
    """("body", "inputs", 0, "context") -> "inputs[0].context", as the client wrote the field."""
    path = ""
    for part in loc:
        if part == "body" and not path:
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"
