"""The served models: each run loaded once with its default predictor, with its batcher and prediction cache."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reviewlens.errors import ReviewlensError
from reviewlens.pool import PooledPredict
from reviewlens.runs import Answer, Run, read_metadata
from reviewlens.serving.batcher import MicroBatcher
from reviewlens.serving.config import ServeConfig
from reviewlens.serving.metrics import Metrics
from reviewlens.serving.schemas import ModelInfo


class PredictionCache:
    """Least-recently-used probabilities (one per label) by a 128-bit digest of the text (keys stay small however
    long the text)."""

    def __init__(self, size: int):
        self.size = size
        self._scores: OrderedDict[bytes, np.ndarray] = OrderedDict()

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()

    def get(self, key: bytes) -> np.ndarray | None:
        score = self._scores.get(key)
        if score is not None:
            self._scores.move_to_end(key)
        return score

    def put(self, key: bytes, score: np.ndarray) -> None:
        self._scores[key] = score
        if len(self._scores) > self.size:
            self._scores.popitem(last=False)


@dataclass
class ServedModel:
    name: str
    run: Run
    batcher: MicroBatcher
    metrics: Metrics
    cache: PredictionCache | None
    default: bool = False
    pool: PooledPredict | None = None

    async def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Each text's probability of each label (``Run.predict_proba``): from the cache, else from a (shared)
        model call."""
        if not texts:
            return np.zeros((0, len(self.run.labels)), np.float32)
        if self.cache is None:
            return await self.batcher.predict_many(texts)
        keys = [PredictionCache.key(text) for text in texts]
        found = [self.cache.get(key) for key in keys]
        missing = [i for i, score in enumerate(found) if score is None]
        if len(missing) < len(texts):
            self.metrics.cache_hits.labels(self.name).inc(len(texts) - len(missing))
        if missing:
            self.metrics.cache_misses.labels(self.name).inc(len(missing))
            computed = await self.batcher.predict_many([texts[i] for i in missing])
            for i, row in zip(missing, computed, strict=True):
                found[i] = row
                self.cache.put(keys[i], row)
        return np.stack(found)  # type: ignore[arg-type]  # every entry is filled now

    async def answers(self, texts: Sequence[str]) -> list[Answer]:
        """Each text's label, score and probability of every label, as ``Run.answers`` gives them."""
        probabilities = await self.probabilities(texts)
        labels = self.run.labels
        return [Answer.of(label, row, labels) for label, row in zip(self.run.decide(probabilities), probabilities,
                                                                    strict=True)]  # fmt: skip

    async def close(self) -> None:
        """Answer what is queued, then stop the batcher and any helper processes."""
        await self.batcher.close()
        if self.pool is not None:
            self.pool.close()

    def info(self) -> ModelInfo:
        metadata = self.run.metadata
        return ModelInfo(
            name=self.name,
            default=self.default,
            recipe=metadata.recipe,
            predictor=self.run.predictor.kind,
            runtime=self.run.predictor.runtime,
            labels=metadata.labels,
            threshold=metadata.threshold,
            created=metadata.created,
            data_fingerprint=metadata.data.get("fingerprint"),
            val_accuracy=metadata.val_accuracy,
            test_accuracy=metadata.test_accuracy,
            metrics=metadata.metrics,
        )


def check_runs(run_dirs: Sequence[str]) -> list[str]:
    """The model names of the runs (each run's name), after checking every run; fails on a repeated name."""
    names: dict[str, str] = {}
    for run_dir in run_dirs:
        name = read_metadata(run_dir).name
        if name in names:
            raise ReviewlensError(
                f"{names[name]} and {run_dir} are both named {name!r}; serve runs with distinct names"
            )
        names[name] = run_dir
    return list(names)


def load_run(run_dir: str) -> Run:
    """The run, loaded with its default predictor; one that cannot be loaded fails in one line that names it.

    Its files match their checksums by then, so a failure here is a file written wrong or for another
    version of its library: whatever the loader raises, the message says which run and what it said.
    """
    try:
        return Run(run_dir)
    except ReviewlensError:
        raise
    except Exception as error:
        said = " ".join(str(error).split())[:300] or "no message"
        raise ReviewlensError(
            f"{run_dir} could not be loaded ({type(error).__name__}: {said}); train the run again"
        ) from error


def load_models(config: ServeConfig, metrics: Metrics) -> dict[str, ServedModel]:
    """Every run of the configuration, loaded and ready; the first is the default."""
    check_runs(config.run_dirs)
    served: dict[str, ServedModel] = {}
    for index, run_dir in enumerate(config.run_dirs):
        run = load_run(run_dir)
        name = run.name
        batch_sizes, texts = metrics.batch_size.labels(name), metrics.texts.labels(name)

        def count(size: int, batch_sizes: Any = batch_sizes, texts: Any = texts) -> None:
            batch_sizes.observe(size)
            texts.inc(size)

        pool = None
        if config.processes and run.runtime == "numpy":
            pool = PooledPredict(run, config.processes, on_restart=metrics.helper_restarts.labels(name).inc)
        batcher = MicroBatcher(
            pool or run.predict_proba,
            max_batch=config.max_batch,
            max_wait=config.max_wait_ms / 1000,
            on_batch=count,
            name=name,
        )
        cache = PredictionCache(config.cache_size) if config.cache_size else None
        served[name] = ServedModel(name, run, batcher, metrics, cache, default=index == 0, pool=pool)
    return served
