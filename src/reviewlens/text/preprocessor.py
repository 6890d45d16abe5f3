"""Preprocessing, the one protocol every text-to-input step follows, and how a run stores its step.

Word bags (``reviewlens.text.BagOfWords``), word-id sequences (``reviewlens.text.sequences.SequenceVectorizer``) and
character ids (``reviewlens.text.characters.CharacterEncoder``) are peers: each is fitted with ``fit``, applied with
``transform`` (texts) or ``transform_ids`` (texts already tokenized to ids, the model library's path), saved
with ``get_config`` and rebuilt with ``from_config``, and gives the Keras layers that do the same from raw
strings. A run keeps its step in ``vectorizer.json``, tagged with the step's ``kind``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

from reviewlens.errors import ReviewlensError
from reviewlens.files import read_json
from reviewlens.registry import Registry
from reviewlens.text.characters import CharacterEncoder
from reviewlens.text.sequences import SequenceVectorizer
from reviewlens.text.words import BagOfWords

if TYPE_CHECKING:
    pass

VECTORIZER_FILE = "vectorizer.json"
#: Token id conventions shared by every preprocessor's ``token_ids``.
PADDING, OUT_OF_VOCABULARY = 0, 1


class Preprocessor(Protocol):
    """Raw review texts to model input."""

    kind: ClassVar[str]

    def fit(self, texts: Iterable[str]) -> Self:
        """Learn the vocabulary (and any statistics) from ``texts``."""
        ...

    def transform(self, texts: Iterable[str]) -> Any:
        """Model input for ``texts``: one row per text."""
        ...

    def tokenize(self, text: str) -> list[str]:
        """The text's tokens, standardized and split as the preprocessor reads them."""
        ...

    def token_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of standardized tokens: ``PADDING`` is never given, ``OUT_OF_VOCABULARY`` for unknown ones."""
        ...

    def transform_ids(self, rows: Sequence[Sequence[int]]) -> Any:
        """What ``transform`` gives for texts whose tokens ``token_ids`` mapped to ``rows``."""
        ...

    def get_config(self) -> dict[str, Any]: ...

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Self: ...


PREPROCESSORS: Registry[type[Preprocessor]] = Registry("preprocessor kind")
for _kind in (BagOfWords, SequenceVectorizer, CharacterEncoder):
    PREPROCESSORS.register(_kind.kind, _kind)


def save_preprocessor(preprocessor: Preprocessor, directory: Path) -> None:
    config = {"kind": preprocessor.kind, **preprocessor.get_config()}
    (directory / VECTORIZER_FILE).write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")


def load_preprocessor(directory: Path) -> Preprocessor:
    """The run's preprocessing step from its ``vectorizer.json`` (runs before format 2 hold a bag of words), read
    within its bound and depth (``reviewlens.files``)."""
    path = directory / VECTORIZER_FILE
    config = read_json(path, "train the model again")
    try:
        kind = config.pop("kind", BagOfWords.kind)
        return PREPROCESSORS[kind].from_config(config)
    except (LookupError, TypeError, ValueError, AttributeError) as error:
        raise ReviewlensError(f"{path} is corrupt ({type(error).__name__}: {error}); train the model again") from None
