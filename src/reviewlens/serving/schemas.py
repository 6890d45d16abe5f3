"""Request and response bodies of the HTTP API (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from reviewlens.text import EMPTY_TEXT, SPACE_LIKE, is_blank


def _encodable(text: str) -> str:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the text holds a lone UTF-16 surrogate, which is not a Unicode character") from None
    return text


def _not_blank(text: str) -> str:
    if is_blank(text):
        raise ValueError("the text is empty or only whitespace; send a review")
    return text


#: A string with a character that is not whitespace: the JSON Schema of what ``_not_blank`` accepts.
NOT_BLANK = "[^ " + SPACE_LIKE + "]"

Status = Literal["ok", "loading", "failed", "stopping"]
Text = Annotated[str, AfterValidator(_encodable), Field(description="the review; at most 100,000 characters")]
OneText = Annotated[
    Text,
    AfterValidator(_not_blank),
    Field(description="the review: not blank, at most 100,000 characters", json_schema_extra={"pattern": NOT_BLANK}),
]
ModelName = Annotated[str | None, Field(description="a name from GET /v1/models; the default model if left out")]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "A wonderful film."}]})
    text: OneText
    model: ModelName = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[Text] = Field(description="at most 1,000 reviews; a blank one is answered without a score")
    model: ModelName = None


class ExplainRequest(PredictRequest):
    top: int = Field(12, ge=1, le=100, description="how many terms to return")


_SCORE = "a two-label run's probability that the review is positive; with more labels, that of the label given"
_PROBABILITIES = "the probability of each of the run's labels (see /v1/models), by name"


class Prediction(BaseModel):
    label: str = Field(description="the run's label for the text: one of its labels (see /v1/models)")
    score: float = Field(description=_SCORE)
    probabilities: dict[str, float] = Field(description=_PROBABILITIES)
    model: str


class BatchPrediction(BaseModel):
    label: str | None = Field(description="the run's label for the text; null for a blank text")
    score: float | None = Field(description=_SCORE + "; null for a blank text")
    probabilities: dict[str, float] | None = Field(description=_PROBABILITIES + "; null for a blank text")
    model: str
    error: Literal["empty text"] | None = Field(description="why the text has no score: null when it has one")

    @classmethod
    def unscored(cls, model: str) -> BatchPrediction:
        return cls(label=None, score=None, probabilities=None, model=model, error=EMPTY_TEXT)


class TermEffect(BaseModel):
    term: str = Field(description="a vocabulary term: a word or an n-gram")
    contribution: float = Field(
        description="score with the term minus score without it, a change in probability (-0.0574: 5.74 points "
        "less likely positive; with more than two labels, less likely the review's label)"
    )


class Explanation(Prediction):
    explained: bool = Field(description="whether the model can tell which terms moved the score")
    method: Literal["exact", "occlusion"] = Field(
        description="exact: each vocabulary term left out of the model's input; occlusion: each word removed"
    )
    terms: list[TermEffect] = Field(description="the terms that moved the score most, largest effect first")
    words: int | None = Field(default=None, description="occlusion: the text's distinct words; null for exact")
    words_considered: int | None = Field(
        default=None,
        description="occlusion: how many of them were removed in turn (the first; fewer than words "
        "when the text has more than the cap)",
    )


class ModelInfo(BaseModel):
    name: str
    default: bool
    recipe: str
    predictor: str = Field(description="the predictor kind serving it, e.g. dense.v1 (NumPy) or keras.v1")
    runtime: Literal["numpy", "keras"]
    labels: list[str] = Field(description="the labels it gives, in order: negative, positive for two")
    threshold: float = Field(description="score at or above which a two-label run says positive")
    created: str | None
    data_fingerprint: str | None
    val_accuracy: float | None
    test_accuracy: float | None
    metrics: dict[str, Any] = Field(description="the run's validation and test metrics")


class Health(BaseModel):
    status: Status
    models: list[str]
    reason: str | None = Field(None, description="why the server is not ready: the model that failed to load")


class Problem(BaseModel):
    detail: Any
