"""modelkit Models over trained runs, chained as in modelkit's IMDB tutorial, and a ModelLibrary of several runs.

Every recipe family is served: the tokenizer standardizes and splits, the vectorizer maps tokens to the
run's own ids, and the classifier hands the ids to the run's predictor (``Predictor.predict_proba_ids``).

>>> library = load_library(["runs/bigram"], cache={"cache_provider": "native", "maxsize": 4096})
>>> library.get("imdb_sentiment").predict({"text": "A wonderful film."})
Sentiment(label='positive', score=0.93...)

Each run directory is one modelkit asset. Without ``load_library``, ``ModelLibrary(models=reviewlens.library)``
works too, with ``MODELKIT_REVIEWLENS_RUN_FILE`` naming the run directory (modelkit's own asset override).

The tutorial's own files are assets too, given the modelkit way: the vectorizer reads a ``vocabulary.txt`` (one
token a line, ids from 2) and the classifier a Keras ``.keras`` or ``.h5`` model of token ids::

    modelkit.ModelLibrary(models=[Tokenizer, Vectorizer, Classifier],
                          configuration={"imdb_vectorizer": {"asset": "vocabulary.txt"},
                                         "imdb_classifier": {"asset": "imdb_model.keras"}})
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import modelkit
import msgspec
import numpy as np
import pydantic
from modelkit.core.model_configuration import ModelConfiguration
from modelkit.core.settings import LibrarySettings, NativeCacheSettings, RedisSettings
from modelkit.utils.cache import Cache, CacheItem

from reviewlens.errors import ReviewlensError
from reviewlens.files import check_size, read_bytes
from reviewlens.predictors import binary_columns
from reviewlens.runs import METADATA_FILE, Answer, Run, Runtime, read_metadata, run_preprocessor, sha256_of
from reviewlens.text import BagOfWords
from reviewlens.text.preprocessor import OUT_OF_VOCABULARY, PADDING, Preprocessor
from reviewlens.text.sequences import SequenceVectorizer

__all__ = [
    "Classifier",
    "Review",
    "Sentiment",
    "SentimentClassifier",
    "Tokenizer",
    "Vectorizer",
    "configurations",
    "load_library",
]

#: The asset every configuration below reads: a run directory (``MODELKIT_REVIEWLENS_RUN_FILE`` sets it).
RUN_ASSET = "reviewlens/run"
#: modelkit's override of that asset's path, which the tokenizer (that declares no asset) reads as well
RUN_ASSET_OVERRIDE = "MODELKIT_REVIEWLENS_RUN_FILE"

CacheOption = NativeCacheSettings | RedisSettings | Mapping[str, Any] | Literal["native", "redis"] | None


class Tokenizer(modelkit.Model[str, list[str]]):
    """A review's tokens, standardized exactly as the run's preprocessing does in training."""

    # No asset, as in the tutorial: ``load_library`` gives it the run; ``MODELKIT_REVIEWLENS_RUN_FILE`` does too.
    CONFIGURATIONS = {"imdb_tokenizer": {}}  # noqa: RUF012 - modelkit declares it as a plain dict

    def _load(self) -> None:
        # ``Tokenizer()`` alone (no run) tokenizes as every recipe does by default; it needs no vocabulary.
        run = self.asset_path or os.environ.get(RUN_ASSET_OVERRIDE)
        self.preprocessor = preprocessor_of(Path(run)) if run and Path(run).is_dir() else SequenceVectorizer()

    def _predict_batch(self, items: list[str]) -> list[list[str]]:  # type: ignore[override]
        return [self.preprocessor.tokenize(text) for text in items]


class Vectorizer(modelkit.Model[list[str], list[int]]):
    """Token ids from the run's vocabulary: 0 is padding, 1 out of vocabulary, known tokens from 2.

    ``length`` truncates or pads every sequence to that many ids (default: each keeps its own length);
    ``drop_oov`` leaves unknown tokens out instead of writing 1.
    """

    CONFIGURATIONS = {"imdb_vectorizer": {"asset": RUN_ASSET}}  # noqa: RUF012 - modelkit declares it as a plain dict

    def _load(self) -> None:
        path = Path(self.asset_path)
        self.preprocessor = vocabulary_file(path) if path.is_file() else preprocessor_of(path)
        #: token -> id, as the tutorial's ``vectorizer.vocabulary`` (``len(vocabulary) + 2`` rows for an Embedding)
        self.vocabulary: dict[str, int] = token_vocabulary(self.preprocessor)

    def _predict_batch(  # type: ignore[override]
        self, items: list[list[str]], length: int | None = None, drop_oov: bool = False
    ) -> list[list[int]]:
        rows = []
        for tokens in items:
            ids = self.preprocessor.token_ids(tokens)
            if drop_oov:
                ids = [i for i in ids if i != OUT_OF_VOCABULARY]
            if length is not None:
                ids = ids[:length] + [PADDING] * (length - len(ids))
            rows.append(ids)
        return rows


class Classifier(modelkit.Model[list[int], float]):
    """The run's trained model: probability that the review the token ids stand for is positive.

    The ids go to the run's predictor as they are (its preprocessing rebuilds n-grams or pads them), so
    the scores are exactly the run's. ``model_settings["runtime"]`` picks it as ``reviewlens.load`` does.

    The asset may instead be the user's own Keras model file (``.keras``, or ``.h5`` read through Keras), the
    tutorial's ``imdb_model.h5``: token ids in, the probability of positive in its last output column. Rows are
    padded with 0 or cut to the model's input length. It is loaded in Keras' safe mode; a model holding a Python
    ``lambda`` loads only with ``model_settings={"safe_mode": False}``, for a file one trusts.
    """

    CONFIGURATIONS = {  # noqa: RUF012 - modelkit declares it as a plain dict
        "imdb_classifier": {"asset": RUN_ASSET}
    }

    def _load(self) -> None:
        path = Path(self.asset_path)
        self.run: Run | None = None
        self.keras_model: KerasIdModel | None = None
        if path.is_file():
            self.keras_model = KerasIdModel(path, safe_mode=bool(self.model_settings.get("safe_mode", True)))
            self.run_id = self.keras_model.identity
        else:
            self.run = Run(path, runtime=self.model_settings.get("runtime", "auto"))
            self.run_id = run_identity(path)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.run.labels) if self.run is not None else KerasIdModel.labels

    def _predict_batch(self, items: list[list[int]]) -> list[float]:  # type: ignore[override]
        if self.keras_model is not None:
            return self.keras_model.predict(items)
        assert self.run is not None
        if len(self.run.labels) > 2:
            raise ReviewlensError(
                f"{self.run.run_dir} has {len(self.run.labels)} labels and imdb_classifier gives a two-label run's "
                "probability of positive; ask imdb_sentiment for its label and probabilities"
            )
        return [float(score) for score in self.run.predictor.predict_proba_ids(items)[:, -1]]


#: Keras 3 rebuilds from .h5 only a model that names its input (``keras.Input``); .keras files keep every model
KERAS_REMEDY = "give a model Keras saved (model.save('imdb_model.keras'))"


class KerasIdModel:
    """A user's own Keras classifier of token ids (the modelkit tutorial's ``imdb_model.h5``)."""

    labels = ("negative", "positive")

    def __init__(self, path: Path, safe_mode: bool = True):
        import keras

        import reviewlens.models.layers  # noqa: F401 - its layers (SumOverTime for the tutorial's Lambda) load

        check_size(path, "give the Keras model file the classifier should load")
        try:
            self.model = keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
        except ValueError as error:
            if "safe_mode" in str(error):
                raise ReviewlensError(
                    f"{path} holds a Python lambda, which Keras loads only outside its safe mode: if you trust the "
                    "file, give imdb_classifier model_settings={'safe_mode': False}, or build the model with "
                    "reviewlens.models.layers.SumOverTime() in place of the tutorial's Lambda"
                ) from None
            raise ReviewlensError(f"{path} cannot be loaded by Keras ({error}); {KERAS_REMEDY}") from None
        except (OSError, KeyError, TypeError) as error:
            raise ReviewlensError(f"{path} cannot be loaded by Keras ({error}); {KERAS_REMEDY}") from None
        #: the ids each row is padded or cut to: the model's input length, or the longest row of a batch
        self.length: int | None = input_length(self.model)
        self.identity = sha256_of(path)[:16]  # the cache keys' name for this model: new when the file changes

    def predict(self, rows: Sequence[Sequence[int]]) -> list[float]:
        if not rows:
            return []
        length = self.length or max(1, *(len(row) for row in rows))
        ids = np.zeros((len(rows), length), np.int32)
        for i, row in enumerate(rows):
            cut = np.asarray(row[:length], np.float64)  # the tutorial's vectorizer gives floats when it pads
            ids[i, : len(cut)] = cut
        outputs = np.asarray(self.model.predict(ids, batch_size=1024, verbose=0), np.float32)
        return [float(p) for p in outputs.reshape(len(rows), -1)[:, -1]]


def input_length(model: Any) -> int | None:
    """The sequence length a model of token ids was built for; a Sequential built by ``fit`` keeps it only in its
    first layer's build configuration."""
    try:
        shape = model.input_shape
    except AttributeError:
        first = (getattr(model, "layers", None) or [None])[0]
        build: dict[str, Any] = first.get_build_config() or {} if hasattr(first, "get_build_config") else {}
        shape = build.get("input_shape")
    if isinstance(shape, (tuple, list)) and len(shape) == 2 and isinstance(shape[1], int):
        return shape[1]
    return None


def vocabulary_file(path: Path) -> SequenceVectorizer:
    """The tutorial's ``vocabulary.txt``: one token a line, the line's index + 2 its id (0 padding, 1 unknown)."""
    raw = read_bytes(path, "give the vocabulary file the vectorizer should read, one token a line")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ReviewlensError(f"{path} is not UTF-8 text ({error.reason}); give the vocabulary as UTF-8") from None
    return SequenceVectorizer(words=[line.strip() for line in lines])


def preprocessor_of(run_dir: Path) -> Preprocessor:
    """The run's preprocessing; where the run keeps none of its own (a format 1 sequence run keeps it in model.keras,
    an ensemble has its first member's), its predictor's."""
    return run_preprocessor(run_dir, read_metadata(run_dir)) or Run(run_dir).predictor.preprocessor


def token_vocabulary(preprocessor: Preprocessor) -> dict[str, int]:
    """Each known token's id (from 2: 0 is padding, 1 out of vocabulary), read from the preprocessor's own tables."""
    if isinstance(preprocessor, SequenceVectorizer):
        return {word: i for i, word in enumerate(preprocessor.words, start=2)}
    if isinstance(preprocessor, BagOfWords):
        return {token.decode("utf-8"): i + 2 for token, i in preprocessor._fitted_tables().unigram_ids.items()}
    return {}


class Review(pydantic.BaseModel):
    text: str


class Sentiment(pydantic.BaseModel):
    label: str = pydantic.Field(description="one of the run's labels: negative or positive for two")
    score: float = pydantic.Field(
        description="a two-label run's probability that the review is positive; with more labels, that of the label"
    )
    probabilities: dict[str, float] = pydantic.Field(description="the probability of each of the run's labels")


class SentimentClassifier(modelkit.Model[Review, Sentiment]):
    """A review's sentiment: tokenizer, then vectorizer, then the run's classifier (an ensemble takes the text)."""

    CONFIGURATIONS = {  # noqa: RUF012 - modelkit declares it as a plain dict
        "imdb_sentiment": {
            "model_dependencies": {
                "tokenizer": "imdb_tokenizer",
                "vectorizer": "imdb_vectorizer",
                "classifier": "imdb_classifier",
            },
            "model_settings": {"cache_predictions": True},
        }
    }

    def _load(self) -> None:
        self.tokenizer = self.model_dependencies.get("tokenizer", Tokenizer)
        self.vectorizer = self.model_dependencies.get("vectorizer", Vectorizer)
        self.classifier = self.model_dependencies.get("classifier", Classifier)
        if self.cache is not None and not isinstance(self.cache, RunKeyedCache):
            self.cache = RunKeyedCache(self.cache, self.classifier.run_id)

    def _predict_batch(self, items: list[Review]) -> list[dict[str, Any]]:  # type: ignore[override]
        texts, run = [item.text for item in items], self.classifier.run
        if run is None:  # the user's own Keras model of token ids: its labels are negative and positive
            length = self.classifier.keras_model.length if self.classifier.keras_model else None
            tokens = self.tokenizer.predict_batch(texts)
            scores = self.classifier.predict_batch(self.vectorizer.predict_batch(tokens, length=length))
            labels = KerasIdModel.labels
            return [
                msgspec.structs.asdict(Answer.of(labels[score >= 0.5], row, labels))
                for score, row in zip(scores, binary_columns(np.asarray(scores, np.float32)), strict=True)
            ]
        if not run.predictor.accepts_ids or len(run.labels) > 2:
            # An ensemble (each member tokenizes its own way) or a run of more labels: the texts go to it whole.
            return [msgspec.structs.asdict(answer) for answer in run.answers(texts)]
        scores = self.classifier.predict_batch(self.vectorizer.predict_batch(self.tokenizer.predict_batch(texts)))
        columns = binary_columns(np.asarray(scores, np.float32))
        return [
            msgspec.structs.asdict(Answer.of(run.label(score), row, run.labels))
            for score, row in zip(scores, columns, strict=True)
        ]


MODELS: tuple[type[modelkit.Model], ...] = (Tokenizer, Vectorizer, Classifier, SentimentClassifier)


class RunKeyedCache(Cache):
    """A modelkit cache whose keys also name the run, so a retrained run never answers from an old entry."""

    def __init__(self, cache: Cache, run_id: str):
        self.cache = cache
        self.run_id = run_id

    def hash_key(self, model_key: str, item: Any, kwargs: dict[str, Any]) -> Any:
        return self.cache.hash_key(f"{model_key}@{self.run_id}", item, kwargs)

    def get(self, model_key: str, item: Any, kwargs: dict[str, Any]) -> CacheItem:
        return self.cache.get(f"{model_key}@{self.run_id}", item, kwargs)

    def set(self, k: Any, d: Any) -> None:
        self.cache.set(k, d)


def run_identity(run_dir: str | os.PathLike[str]) -> str:
    """A digest of the run's metadata, which holds the checksum of every file: new for every training."""
    return hashlib.sha256((Path(run_dir) / METADATA_FILE).read_bytes()).hexdigest()[:16]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_") or "run"


def configurations(
    run_dirs: Sequence[str | os.PathLike[str]], runtime: Runtime = "auto"
) -> dict[str, ModelConfiguration]:
    """The four configurations for each run: plain names for the first, ``<name>_<run name>`` for others.

    Each run is checked here (a missing or corrupt run fails with one line naming it).
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        raise TypeError("load_library takes a list of run directories, not one")
    if not run_dirs:
        raise ReviewlensError("no run directories given; pass at least one directory written by `reviewlens train`")
    result: dict[str, ModelConfiguration] = {}
    seen: dict[str, Path] = {}
    for index, run_dir in enumerate(run_dirs):
        path = Path(run_dir).resolve()
        name = read_metadata(path).name
        suffix = "" if index == 0 else "_" + _slug(name)
        if path in seen.values():
            raise ReviewlensError(f"{path} is given twice; pass each run once")
        if suffix in seen:
            raise ReviewlensError(f"{seen[suffix]} and {path} are both runs named {name!r}; rename one directory")
        seen[suffix] = path
        asset = f"{RUN_ASSET}s/{index}_{_slug(name)}"
        for model_type in MODELS:
            for key, template in model_type.CONFIGURATIONS.items():
                settings = dict(template.get("model_settings", {}))
                has_run = bool(template.get("asset")) or model_type is Tokenizer  # it tokenizes as this run
                if has_run:
                    settings["asset_path"] = str(path)  # modelkit's override: the asset is this directory
                if model_type is Classifier:
                    settings["runtime"] = runtime
                result[key + suffix] = ModelConfiguration(
                    model_type=model_type,
                    asset=asset if has_run else None,
                    model_settings=settings,
                    model_dependencies={
                        ref: dep + suffix for ref, dep in template.get("model_dependencies", {}).items()
                    },
                )
    return result


def _cache_settings(cache: CacheOption) -> NativeCacheSettings | RedisSettings | None:
    if cache is None or isinstance(cache, NativeCacheSettings | RedisSettings):
        return cache
    if isinstance(cache, str):
        cache = {"cache_provider": cache}
    provider = cache.get("cache_provider")
    if provider == "native":
        return NativeCacheSettings(**cache)
    if provider == "redis":
        return RedisSettings(**cache)
    raise ReviewlensError(f"unknown cache_provider {provider!r}; use 'native' or 'redis'")


def load_library(
    run_dirs: Sequence[str | os.PathLike[str]],
    lazy: bool = False,
    cache: CacheOption = None,
    runtime: Runtime = "auto",
) -> modelkit.ModelLibrary:
    """A ``modelkit.ModelLibrary`` serving every run side by side (see ``configurations`` for the names).

    ``lazy`` loads each model on its first ``get``; ``cache`` is modelkit's cache settings (``"native"``,
    ``{"cache_provider": "redis", "host": ..., "port": ...}``, ...), by default its ``MODELKIT_CACHE_*``
    environment. Only ``imdb_sentiment*`` caches its predictions, under keys that name the run.
    """
    configuration = configurations(run_dirs, runtime)
    settings: dict[str, Any] = {"lazy_loading": lazy}
    if cache is not None:
        settings["cache"] = _cache_settings(cache)
    return modelkit.ModelLibrary(
        settings=LibrarySettings(**settings), configuration=dict(configuration), required_models=list(configuration)
    )
