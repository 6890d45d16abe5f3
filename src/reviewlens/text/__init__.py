"""From review text to a model's input, every step in one place, each with its Keras twin beside it.

- ``rules``: the standardization and tokens every model reads text by;
- ``words``: ``BagOfWords``, the n-gram vectorizer (multi-hot, count, TF-IDF, mean), and ``arrow``, its tokenizer as
  Arrow compute kernels;
- ``sequences``: ``SequenceVectorizer``, token ids cut and padded; ``characters``: ``CharacterEncoder``, the
  character recipes' alphabet and ids;
- ``preprocessor``: the protocol they share, and saving and loading them with a run;
- ``keras``: ``keras_layers(preprocessor)``, the same steps as Keras layers from raw strings (imports TensorFlow;
  nothing else here does).

The names most code needs are here; the modules hold the rest.
"""

from reviewlens.text.characters import CharacterEncoder
from reviewlens.text.preprocessor import Preprocessor, load_preprocessor, save_preprocessor
from reviewlens.text.rules import (
    EMPTY_TEXT,
    LINE_BREAK_PATTERN,
    PUNCTUATION,
    SEPARATORS,
    SPACE_LIKE,
    Standardization,
    is_blank,
    standardize,
    tokenize,
    valid_text,
)
from reviewlens.text.sequences import SequenceVectorizer
from reviewlens.text.words import CHUNK, OOV_TOKEN, OUTPUT_MODES, BagOfWords, OutputMode

__all__ = [
    "CHUNK",
    "EMPTY_TEXT",
    "LINE_BREAK_PATTERN",
    "OOV_TOKEN",
    "OUTPUT_MODES",
    "PUNCTUATION",
    "SEPARATORS",
    "SPACE_LIKE",
    "BagOfWords",
    "CharacterEncoder",
    "OutputMode",
    "Preprocessor",
    "SequenceVectorizer",
    "Standardization",
    "is_blank",
    "load_preprocessor",
    "save_preprocessor",
    "standardize",
    "tokenize",
    "valid_text",
]
