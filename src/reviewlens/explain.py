"""Which words or terms moved a score: the explanation every predictor gives, and occlusion, which any can.

Occlusion removes each distinct word of the text in turn (every occurrence of it) and scores the rest:
a word's contribution is the score with the text as it is minus the score without it, so positive words
pushed the review towards positive. With more than two labels the score is the probability of the label the
text gets (its most probable), and a term's contribution is to that label's probability. Kinds that can
compute exact contributions (the NumPy bag-of-words predictor) override ``Predictor.explain``.

Its work is bounded whatever the text: only the first ``MAX_OCCLUDED_WORDS`` distinct words are occluded
(the explanation says how many the text has), and the texts without a word are scored a batch at a time,
as token-id rows where the predictor takes them (one id list, filtered) and else as strings, in batches
of at most ``OCCLUSION_BATCH_TOKENS`` tokens, so one explanation holds a few batches' memory, not a copy of
the text per word.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from reviewlens.predictors import Predictor

Method = Literal["exact", "occlusion"]
#: The distinct words occlusion considers, the first of the text: each costs one scoring of the text.
MAX_OCCLUDED_WORDS = 256
#: Tokens per batch of occluded texts (a long text: fewer texts a batch), which bounds a batch's memory.
OCCLUSION_BATCH_TOKENS = 200_000


@dataclass(frozen=True)
class Contribution:
    term: str  # a word, or a vocabulary n-gram such as "not good"
    contribution: float  # score minus the score without the term


@dataclass(frozen=True)
class Explanation:
    score: float  # probability that the text is positive, as the run predicts it (more labels: of ``label``)
    terms: list[Contribution]  # terms present in the text, largest effect first
    method: Method  # "exact": leave-one-term-out on the model's own input; "occlusion": words removed from the text
    label: int | None = None  # more than two labels: the index of the label explained, the text's most probable
    words: int | None = None  # occlusion: the text's distinct words; more than ``considered`` when capped
    considered: int | None = None  # occlusion: how many of them were occluded (the first, at most the cap)

    @property
    def capped(self) -> bool:
        """Whether occlusion left out some of the text's words (``MAX_OCCLUDED_WORDS``)."""
        return self.words is not None and self.considered is not None and self.considered < self.words


def explained_column(probabilities: np.ndarray) -> int | None:
    """Which column of a text's probabilities an explanation follows: ``None`` for two labels (the last column,
    positive, as always), else the text's most probable label."""
    return None if len(probabilities) == 2 else int(np.argmax(probabilities))


def ranked(
    score: float, terms: Sequence[str], effects: np.ndarray, top: int | None, method: Method, label: int | None = None
) -> Explanation:
    """The explanation with ``terms`` ordered by the size of their effect (ties keep the text's order)."""
    order = np.argsort(-np.abs(effects), kind="stable")[:top]
    return Explanation(score, [Contribution(terms[i], float(effects[i])) for i in order], method, label)


def occlusion(predictor: Predictor, text: str, top: int | None = None) -> Explanation:
    """Each distinct word's effect on the probability of positive (the last column of ``predict_proba``; with
    more labels, of the text's label: ``explained_column``), for the first ``MAX_OCCLUDED_WORDS`` words.

    The text without a word is its tokens, by the run's own tokenizer, without that word's: as token ids
    where the predictor takes them, else those tokens joined by spaces.
    """
    tokens = predictor.preprocessor.tokenize(text)
    positions = {word: i for i, word in enumerate(dict.fromkeys(tokens))}  # each distinct word's first-seen index
    words = list(positions)[:MAX_OCCLUDED_WORDS]
    codes = np.fromiter((positions[token] for token in tokens), np.int64, len(tokens))
    score_without = _scorer(predictor, tokens)
    probabilities = np.asarray(predictor.predict_proba([text]), np.float64)
    label = explained_column(probabilities[0])
    column = -1 if label is None else label
    batch = max(1, OCCLUSION_BATCH_TOKENS // max(1, len(tokens)))  # a long text: fewer of them a batch
    scores = [np.empty(0)] + [
        np.asarray(score_without([codes != word for word in range(start, min(len(words), start + batch))]))[:, column]
        for start in range(0, len(words), batch)
    ]
    score = probabilities[0, column]
    explanation = ranked(float(np.float32(score)), words, score - np.concatenate(scores), top, "occlusion", label)
    return replace(explanation, words=len(positions), considered=len(words))


def _scorer(predictor: Predictor, tokens: list[str]) -> Callable[[list[np.ndarray]], np.ndarray]:
    """A function scoring the text with only the tokens each mask keeps: as token ids, or joined strings."""
    if predictor.accepts_ids:
        ids = np.asarray(predictor.preprocessor.token_ids(tokens), np.int64)
        return lambda masks: predictor.predict_proba_ids([ids[mask].tolist() for mask in masks])
    words = np.asarray(tokens, dtype=object)
    return lambda masks: predictor.predict_proba([" ".join(words[mask]) for mask in masks])
