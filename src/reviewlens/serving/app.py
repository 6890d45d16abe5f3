"""The FastAPI app: prediction, batch, explanation, models, health and metrics endpoints, and the page at ``/``.

With an API key, every endpoint but ``/health`` and the pages a browser opens (``/``, ``/docs``, the
OpenAPI schema they read) needs ``Authorization: Bearer KEY``; the schema says so.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from reviewlens.errors import ReviewlensError
from reviewlens.predictors import binary_columns
from reviewlens.processes import end_with_parent
from reviewlens.runs import Answer
from reviewlens.serving.batcher import BatcherClosedError
from reviewlens.serving.config import SUPERVISOR_VARIABLE, ServeConfig
from reviewlens.serving.limits import BodyLimitMiddleware
from reviewlens.serving.metrics import Metrics, MetricsMiddleware
from reviewlens.serving.models import ServedModel, load_models
from reviewlens.serving.page import render_page
from reviewlens.serving.schemas import (
    BatchPrediction,
    BatchRequest,
    ExplainRequest,
    Explanation,
    Health,
    ModelInfo,
    Prediction,
    PredictRequest,
    Problem,
    Status,
    TermEffect,
)
from reviewlens.serving.security import BearerAuthMiddleware, ErrorLogMiddleware, logger
from reviewlens.text import is_blank
from reviewlens.version import __version__

ENDPOINTS = ("/", "/v1/predict", "/v1/predict/batch", "/v1/explain", "/v1/models", "/health", "/metrics")
#: What needs no API key: the readiness probe, and the pages a browser opens (they hold no served data).
OPEN_PATHS = ("/health", "/", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
NOT_READY = {"model": Problem, "description": "The models are loading, failed to load, or the server is stopping"}
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No model of that name"},
    413: {"model": Problem, "description": "Body over the limit, a text over 100,000 characters, or too many texts"},
    422: {"description": "Malformed JSON, a field of the wrong type, or a blank text"},
    503: NOT_READY,
}
UNAUTHORIZED = {
    "description": "No API key, or the wrong one (the server was started with --api-key)",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


class State:
    """What the endpoints share: the models once loaded, and whether the server is ready, failed or stopping."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.metrics = Metrics()
        self.models: dict[str, ServedModel] = {}
        self.status: Status = "loading"
        self.reason: str | None = None  # why the models failed to load

    def load(self) -> None:
        """Load every model now, in this thread; a run that cannot be loaded raises ``ReviewlensError``.

        ``serve`` calls it before the port is bound; otherwise the app loads them when it starts."""
        self.models = load_models(self.config, self.metrics)

    def model(self, name: str | None) -> ServedModel:
        if self.status != "ok":
            why = f" ({self.reason})" if self.reason else ""
            raise HTTPException(503, f"the server is {self.status}{why}; GET /health says when it is ready")
        if name is None:
            return next(iter(self.models.values()))
        try:
            return self.models[name]
        except KeyError:
            raise HTTPException(
                404, f"no model named {name!r}; GET /v1/models lists them: {list(self.models)}"
            ) from None

    def check_length(self, texts: list[str]) -> None:
        limit = self.config.max_text_chars
        for i, text in enumerate(texts):
            if len(text) > limit:
                where = "the text" if len(texts) == 1 else f"text {i}"
                raise HTTPException(413, f"{where} has {len(text):,} characters; the limit is {limit:,}")


def create_app(config: ServeConfig) -> FastAPI:
    """The service for ``config.run_dirs``; the models load when the app starts (``/health`` says when)."""
    state = State(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not state.models:
            try:
                await asyncio.get_running_loop().run_in_executor(None, state.load)
            except ReviewlensError as error:  # the server stays up to say so: /health is 503 with the reason
                state.status, state.reason = "failed", str(error)
                logger.error("not ready: %s", error)
                yield
                return
        for served in state.models.values():
            served.batcher.start()
        # Everything loaded so far lives as long as the server: keep it out of the garbage collector's
        # scans, whose full passes over the vocabularies would otherwise stall requests for tens of ms.
        gc.collect()
        gc.freeze()
        state.status = "ok"
        yield
        state.status = "stopping"  # the server has finished its in-flight requests by now
        for served in state.models.values():
            await served.close()

    app = FastAPI(
        title="reviewlens",
        version=__version__,
        summary="Sentiment of review text from trained reviewlens runs.",
        lifespan=lifespan,
    )
    app.state.reviewlens = state

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type and media_type != "application/json" and not media_type.endswith("+json"):
            detail = f"the body is sent as {media_type}; send it as application/json"
            return JSONResponse({"detail": detail}, status_code=415)
        # ASCII-escaped JSON: the echoed input may hold lone surrogates, which UTF-8 cannot encode; a NaN or an
        # infinity it echoes is written as a string, since JSON has no such number.
        body = json.dumps({"detail": _finite(jsonable_encoder(error.errors()))}, ensure_ascii=True, allow_nan=False)
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(BatcherClosedError)
    async def closing(request: Request, error: BatcherClosedError) -> Response:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 400 and isinstance(error.__cause__, UnicodeDecodeError):
            # FastAPI's 400 for a body it could not decode: to the client, that is malformed JSON too.
            detail = [{"type": "json_invalid", "loc": ["body"], "msg": "the body is not UTF-8 encoded JSON"}]
            return JSONResponse({"detail": detail}, status_code=422)
        return await http_exception_handler(request, error)

    @app.post("/v1/predict", response_model=Prediction, responses=CLIENT_ERRORS)
    async def predict(request: PredictRequest) -> Prediction:
        """The sentiment of one review. Requests that arrive together share one model call."""
        served = state.model(request.model)
        state.check_length([request.text])
        (answer,) = await served.answers([request.text])
        return Prediction(label=answer.label, score=answer.score, probabilities=answer.probabilities, model=served.name)

    @app.post("/v1/predict/batch", response_model=list[BatchPrediction], responses=CLIENT_ERRORS)
    async def predict_batch(request: BatchRequest) -> list[BatchPrediction]:
        """The sentiment of up to 1,000 reviews, in order. A blank text gets no score but an error."""
        served = state.model(request.model)
        if len(request.texts) > config.max_batch_texts:
            raise HTTPException(413, f"{len(request.texts):,} texts; at most {config.max_batch_texts:,} per request")
        state.check_length(request.texts)
        scored = [i for i, text in enumerate(request.texts) if not is_blank(text)]
        answers = dict(zip(scored, await served.answers([request.texts[i] for i in scored]), strict=True))
        return [
            BatchPrediction(
                label=answers[i].label,
                score=answers[i].score,
                probabilities=answers[i].probabilities,
                model=served.name,
                error=None,
            )
            if i in answers
            else BatchPrediction.unscored(served.name)
            for i in range(len(request.texts))
        ]

    @app.post("/v1/explain", response_model=Explanation, responses=CLIENT_ERRORS)
    async def explain_text(request: ExplainRequest) -> Explanation:
        """The sentiment of one review and the terms that moved it most: exact for bag-of-words runs, by
        occlusion (each word removed in turn) for the others."""
        served = state.model(request.model)
        state.check_length([request.text])
        result = await run_in_threadpool(served.run.explain, request.text, request.top)
        terms = [TermEffect(term=t.term, contribution=t.contribution) for t in result.terms]
        if result.label is None:  # two labels: the score is positive's, the rest follows from it
            columns = binary_columns(np.asarray([result.score], np.float32))
            answer = Answer.of(served.run.label(result.score), columns[0], served.run.labels)
        else:
            (answer,) = await served.answers([request.text])
        return Explanation(
            label=answer.label,
            score=answer.score,
            probabilities=answer.probabilities,
            model=served.name,
            explained=True,
            method=result.method,
            terms=terms,
            words=result.words,
            words_considered=result.considered,
        )

    @app.get("/v1/models", response_model=list[ModelInfo], responses={503: NOT_READY})
    async def models() -> list[ModelInfo]:
        """The served models: name, recipe, metrics, data fingerprint, creation time. The first is the default."""
        if state.status == "failed":
            state.model(None)  # the 503 that says why
        return [served.info() for served in state.models.values()]

    @app.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}})
    async def health() -> Response:
        """200 once every model is loaded; 503 while loading, after a model failed to load (with the reason),
        or while stopping."""
        body = Health(status=state.status, models=list(state.models), reason=state.reason)
        return JSONResponse(body.model_dump(), status_code=200 if state.status == "ok" else 503)

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus text format: requests, latency, batch sizes, cache hits, errors."""
        return Response(state.metrics.render(), media_type=state.metrics.content_type)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        # The list is in the page itself; behind an API key the model names are too, so the script fills it.
        served = [] if config.api_key is not None else state.models.values()
        listed = [(model.name, model.run.metadata.recipe, model.default) for model in served]
        return HTMLResponse(render_page(listed))

    # Outermost last: metrics see every answer, the error log every failure; CORS answers preflights, which
    # carry no key, and puts its headers on a 401 too; the key is checked before the body is read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    if config.api_key is not None:
        app.add_middleware(BearerAuthMiddleware, key=config.api_key, open_paths=OPEN_PATHS)
        app.openapi = _with_bearer(app.openapi)  # type: ignore[method-assign]
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(ErrorLogMiddleware, log_texts=config.log_texts)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, endpoints=ENDPOINTS)
    return app


def _with_bearer(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """``openapi`` with the bearer scheme declared, required and its 401 listed on every path it guards."""

    def secured() -> dict[str, Any]:
        schema = openapi()
        if "securitySchemes" not in schema.get("components", {}):  # the schema is built once, then cached
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, operations in schema["paths"].items():
                for operation in operations.values():
                    if path not in OPEN_PATHS:
                        operation["security"] = [{"bearer": []}]
                        operation["responses"]["401"] = UNAUTHORIZED
        return schema

    return secured


def _finite(value: Any) -> Any:
    """``value`` with every float that JSON cannot write (NaN, infinities) given as its name instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"  # as the client wrote it
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def app_from_environment() -> FastAPI:
    """The app for a worker process (``uvicorn --factory``): its configuration comes in the environment, and it
    ends with the server that started it, even one killed with SIGKILL."""
    supervisor = os.environ.get(SUPERVISOR_VARIABLE)
    if supervisor:
        end_with_parent(int(supervisor))
    return create_app(ServeConfig.from_environment())
