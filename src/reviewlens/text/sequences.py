"""Reviews as fixed-length sequences of word indices, equal to TextVectorization(output_mode="int").

The vocabulary is fitted with ``BagOfWords`` (Keras' order: count, then token, both descending) and
laid out as Keras' int mode does: 0 is padding, 1 the out-of-vocabulary token, 2... the words.
``reviewlens.text.keras.int_vectorization`` builds the Keras layers that give the same sequences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from reviewlens.text.rules import tokenize
from reviewlens.text.words import BagOfWords

if TYPE_CHECKING:
    pass

Side = Literal["head", "tail"]
PAD, OOV = 0, 1
SIDES: tuple[str, ...] = ("head", "tail")


@dataclass
class SequenceVectorizer:
    """Token ids of each review, cut to ``length`` and padded with zeros.

    ``truncate`` says which end of a long review is cut ("tail": keep the first ``length`` tokens, as
    TextVectorization does; "head": keep the last ones, as ``pad_sequences``); ``padding`` says which
    end of a short one gets the zeros ("tail" after the tokens, "head" before them).
    ``max_tokens`` counts the padding and OOV entries, as TextVectorization's.
    """

    kind: ClassVar[str] = "sequence"

    max_tokens: int = 20000
    length: int = 600
    truncate: Side = "tail"
    padding: Side = "tail"
    words: list[str] = field(default_factory=list)  # index i + 2 is words[i]
    _ids: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_tokens < 3:
            raise ValueError(f"max_tokens must leave room for padding, OOV and a word, not {self.max_tokens}")
        if self.length < 1:
            raise ValueError(f"the sequence length must be at least 1, not {self.length}")
        for name, side in (("truncate", self.truncate), ("padding", self.padding)):
            if side not in SIDES:
                raise ValueError(f"{name} must be head or tail, not {side!r}")
        self._index(self.words)

    def _index(self, words: list[str]) -> None:
        self.words = words
        self._ids = {word: i for i, word in enumerate(words, start=2)}

    @property
    def vocabulary_size(self) -> int:
        """Rows an embedding needs: padding, OOV and the words."""
        return len(self.words) + 2

    def fit(self, texts: Iterable[str]) -> SequenceVectorizer:
        """Learn the ``max_tokens - 2`` most frequent words of ``texts``."""
        counter = BagOfWords(max_tokens=self.max_tokens - 1, ngrams=1, output_mode="count")
        counter.fit_transform(texts)
        self._index(counter.vocabulary[1:])
        return self

    def tokenize(self, text: str) -> list[str]:
        """The text's tokens, standardized as TextVectorization's default standardization does."""
        return tokenize(text)

    def token_ids(self, tokens: Sequence[str]) -> list[int]:
        """Each standardized token's id: 1 out of vocabulary, words from 2 (0 is padding)."""
        get = self._ids.get
        return [get(token, OOV) for token in tokens]

    def ids(self, text: str) -> list[int]:
        """Every token's id, untruncated and unpadded."""
        get = self._ids.get
        return [get(token, OOV) for token in tokenize(text)]

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        """An int32 array of shape (reviews, length)."""
        return self.pad([self.ids(text) for text in texts])

    def transform_ids(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        """``transform``'s output for texts given as ``token_ids`` lists (any padding in them is dropped first)."""
        return self.pad([[i for i in row if i != PAD] for row in rows])

    def pad(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Cut and pad id lists to the sequence length, at the configured ends."""
        length = self.length
        out = np.zeros((len(sequences), length), np.int32)
        for row, ids in enumerate(sequences):
            kept = ids[:length] if self.truncate == "tail" else ids[max(len(ids) - length, 0) :]
            if kept:
                if self.padding == "tail":
                    out[row, : len(kept)] = kept
                else:
                    out[row, length - len(kept) :] = kept
        return out

    def get_config(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens,
            "length": self.length,
            "truncate": self.truncate,
            "padding": self.padding,
            "words": self.words,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SequenceVectorizer:
        return cls(**config)
