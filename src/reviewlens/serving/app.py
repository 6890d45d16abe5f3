"""The FastAPI app: prediction, batch, explanation, models, health and metrics endpoints, and the page at ``/``."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reviewlens import __version__
from reviewlens.serving.batcher import BatcherClosedError
from reviewlens.serving.config import ServeConfig
from reviewlens.serving.limits import BodyLimitMiddleware
from reviewlens.serving.metrics import Metrics, MetricsMiddleware
from reviewlens.serving.models import ServedModel, load_models
from reviewlens.serving.page import PAGE
from reviewlens.serving.schemas import (
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

ENDPOINTS = ("/", "/v1/predict", "/v1/predict/batch", "/v1/explain", "/v1/models", "/health", "/metrics")
CLIENT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No model of that name"},
    413: {"model": Problem, "description": "Body over the limit, a text over 100,000 characters, or too many texts"},
    422: {"description": "Malformed JSON or a field of the wrong type"},
}


class State:
    """What the endpoints share: the models once loaded, and whether the server is stopping."""

    def __init__(self, config: ServeConfig):
        self.config = config
        self.metrics = Metrics()
        self.models: dict[str, ServedModel] = {}
        self.status: Status = "loading"

    def model(self, name: str | None) -> ServedModel:
        if self.status != "ok":
            raise HTTPException(503, f"the server is {self.status}; GET /health says when it is ready")
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
        state.models = await asyncio.get_running_loop().run_in_executor(None, load_models, config, state.metrics)
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
        # ASCII-escaped JSON: the echoed input may hold lone surrogates, which UTF-8 cannot encode.
        body = json.dumps({"detail": jsonable_encoder(error.errors())}, ensure_ascii=True)
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
        (score,) = await served.scores([request.text])
        return Prediction(label=served.run.label(score), score=score, model=served.name)

    @app.post("/v1/predict/batch", response_model=list[Prediction], responses=CLIENT_ERRORS)
    async def predict_batch(request: BatchRequest) -> list[Prediction]:
        """The sentiment of up to 1,000 reviews, in order."""
        served = state.model(request.model)
        if len(request.texts) > config.max_batch_texts:
            raise HTTPException(413, f"{len(request.texts):,} texts; at most {config.max_batch_texts:,} per request")
        state.check_length(request.texts)
        scores = await served.scores(request.texts)
        return [Prediction(label=served.run.label(s), score=s, model=served.name) for s in scores]

    @app.post("/v1/explain", response_model=Explanation, responses=CLIENT_ERRORS)
    async def explain_text(request: ExplainRequest) -> Explanation:
        """The sentiment of one review and the terms that moved it most: exact for bag-of-words runs, by
        occlusion (each word removed in turn) for the others."""
        served = state.model(request.model)
        state.check_length([request.text])
        result = await run_in_threadpool(served.run.explain, request.text, request.top)
        terms = [TermEffect(term=t.term, contribution=t.contribution) for t in result.terms]
        return Explanation(
            label=served.run.label(result.score),
            score=result.score,
            model=served.name,
            explained=True,
            method=result.method,
            terms=terms,
        )

    @app.get("/v1/models", response_model=list[ModelInfo])
    async def models() -> list[ModelInfo]:
        """The served models: name, recipe, metrics, data fingerprint, creation time. The first is the default."""
        return [served.info() for served in state.models.values()]

    @app.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}})
    async def health() -> Response:
        """200 once every model is loaded; 503 while loading or stopping."""
        body = Health(status=state.status, models=list(state.models))
        return JSONResponse(body.model_dump(), status_code=200 if state.status == "ok" else 503)

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus text format: requests, latency, batch sizes, cache hits, errors."""
        return Response(state.metrics.render(), media_type=state.metrics.content_type)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics, endpoints=ENDPOINTS)
    return app


def app_from_environment() -> FastAPI:
    """The app for a worker process (``uvicorn --factory``): its configuration comes in the environment."""
    return create_app(ServeConfig.from_environment())
