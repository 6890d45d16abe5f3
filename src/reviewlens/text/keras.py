"""The Keras side of ``reviewlens.text``: each preprocessor's layers from raw strings to the same model input.

``keras_layers(preprocessor)`` gives them for any preprocessor; the registered standardization functions,
TextVectorization, ``FitLength``, ``RowMean`` and ``CharacterIds`` are here. Importing this module imports
TensorFlow and registers them (``reviewlens.load`` does it for you before ``keras.saving.load_model``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from reviewlens.text.characters import UNK, CharacterEncoder, categories
from reviewlens.text.rules import LINE_BREAK_PATTERN, PUNCTUATION_CLASS, SEPARATOR_CLASS
from reviewlens.text.sequences import SequenceVectorizer
from reviewlens.text.words import BagOfWords

_register = keras.saving.register_keras_serializable(package="reviewlens")


@keras.saving.register_keras_serializable(package="reviewlens", name="standardize")
def standardize(texts: tf.Tensor) -> tf.Tensor:
    """``reviewlens.text.standardize`` as TensorFlow ops, for use inside TextVectorization."""
    texts = tf.strings.lower(texts)  # ASCII letters only, as Keras' default
    texts = tf.strings.regex_replace(texts, SEPARATOR_CLASS, " ")
    return tf.strings.regex_replace(texts, PUNCTUATION_CLASS, "")


@keras.saving.register_keras_serializable(package="reviewlens", name="standardize_split_punctuation")
def standardize_split_punctuation(texts: tf.Tensor) -> tf.Tensor:
    """``lower_and_split_punctuation`` as TensorFlow ops: ``<br />`` removed, each punctuation character apart."""
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, SEPARATOR_CLASS, " ")
    texts = tf.strings.regex_replace(texts, LINE_BREAK_PATTERN, " ")
    return tf.strings.regex_replace(texts, "(" + PUNCTUATION_CLASS + ")", r" \1 ")


STANDARDIZE = {"lower_and_strip_punctuation": standardize, "lower_and_split_punctuation": standardize_split_punctuation}


def text_vectorization(vectorizer: BagOfWords, name: str = "text_vectorization") -> keras.layers.TextVectorization:
    """A TextVectorization layer with ``vectorizer``'s vocabulary: the same vectors from raw strings
    (for ``mean``, the counts: ``bag_of_words_layers`` adds the division)."""
    if not vectorizer.vocabulary:
        raise ValueError("the vectorizer has no vocabulary yet")
    kwargs: dict[str, object] = {}
    if vectorizer.output_mode == "tf_idf":
        assert vectorizer.idf_weights is not None
        # Keras prepends the OOV weight itself from the mean of the weights it is given.
        kwargs["idf_weights"] = vectorizer.idf_weights[1:]
    return keras.layers.TextVectorization(
        max_tokens=vectorizer.max_tokens,
        standardize=STANDARDIZE[vectorizer.standardize],
        split="whitespace",
        ngrams=vectorizer.ngrams if vectorizer.ngrams > 1 else None,
        output_mode="count" if vectorizer.output_mode == "mean" else vectorizer.output_mode,
        vocabulary=vectorizer.vocabulary[1:],
        name=name,
        **kwargs,
    )


def bag_of_words_layers(vectorizer: BagOfWords) -> list[keras.layers.Layer]:
    """Layers from raw strings to ``vectorizer``'s vectors: TextVectorization, then for ``mean`` the
    division of each row by its total (``RowMean``)."""
    layers: list[keras.layers.Layer] = [text_vectorization(vectorizer)]
    if vectorizer.output_mode == "mean":
        layers.append(RowMean(name="row_mean"))
    return layers


def int_vectorization(vectorizer: SequenceVectorizer) -> list[keras.layers.Layer]:
    """Layers from raw strings to ``vectorizer``'s int sequences: TextVectorization(int), then cut and pad."""
    if not vectorizer.words:
        raise ValueError("the sequence vectorizer has no vocabulary yet")
    return [
        keras.layers.TextVectorization(
            standardize=standardize, split="whitespace", output_mode="int", vocabulary=vectorizer.words,
            name="text_vectorization",
        ),
        FitLength(vectorizer.length, vectorizer.truncate, vectorizer.padding, name="fit_length"),
    ]  # fmt: skip


@_register
class FitLength(keras.layers.Layer):
    """Cut and pad int sequences (0 is padding, tokens are never 0) to ``length``.

    TextVectorization keeps the first tokens and pads after them; this also keeps the last ones
    (``truncate="head"``) or pads before them (``padding="head"``), as ``pad_sequences`` does.
    """

    def __init__(self, length: int, truncate: str = "tail", padding: str = "tail", **kwargs: object):
        super().__init__(**kwargs)
        self.length, self.truncate, self.padding = length, truncate, padding

    def call(self, ids: object) -> object:
        n = self.length
        ids = ops.pad(ids, [[0, 0], [0, n]])  # at least n columns, even for a batch of empty reviews
        lengths = ops.sum(ops.cast(ops.not_equal(ids, 0), "int32"), axis=1)
        steps = ops.arange(n, dtype="int32")[None, :]
        start = ops.maximum(lengths - n, 0) if self.truncate == "head" else ops.zeros_like(lengths)
        kept = ops.take_along_axis(ids, start[:, None] + steps, axis=1)
        if self.padding == "head":
            shift = (n - ops.minimum(lengths, n))[:, None]
            moved = ops.take_along_axis(kept, ops.maximum(steps - shift, 0), axis=1)
            kept = ops.where(steps >= shift, moved, ops.zeros_like(moved))
        return kept

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.length)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "length": self.length, "truncate": self.truncate, "padding": self.padding}


@_register
class RowMean(keras.layers.Layer):
    """Each row divided by its sum; a row of zeros stays zeros. After TextVectorization(count) it gives the
    text's average bag of terms (``BagOfWords(output_mode="mean")``)."""

    def call(self, counts: object) -> object:
        totals = ops.sum(counts, axis=-1, keepdims=True)
        return counts / ops.where(totals > 0, totals, ops.ones_like(totals))


def unknown_id(cats: Sequence[str]) -> int:
    """The id of a character outside the alphabet: ``<UNK>``'s where it stands, else the blank ``C``."""
    return cats.index(UNK) if UNK in cats else len(cats)


def character_table(cats: Sequence[str], default: int) -> tf.lookup.StaticHashTable:
    """Each category's character (a string) to its id; any other string to ``default``."""
    keys = tf.constant([c for c in cats if c != UNK], tf.string)
    values = tf.constant([i for i, c in enumerate(cats) if c != UNK], tf.int32)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default)


@_register
class CharacterIds(keras.layers.Layer):
    """Raw strings (batch, 1) -> character ids (batch, length), as ``CharacterEncoder.transform`` gives them."""

    def __init__(self, alphabet: str, length: int, drop_unknown: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.alphabet, self.length, self.drop_unknown = alphabet, int(length), bool(drop_unknown)
        self._categories = categories(alphabet)
        self._unknown = unknown_id(self._categories)
        self._blank = len(self._categories)

    def call(self, text: Any) -> Any:
        text = tf.reshape(text, [-1])
        text = tf.strings.lower(tf.strings.regex_replace(text, "<br />", " "), encoding="utf-8")
        text = tf.strings.regex_replace(text, SEPARATOR_CLASS, " ")
        text = tf.strings.regex_replace(text, PUNCTUATION_CLASS, "")
        chars = tf.strings.unicode_split(text, "UTF-8")
        ids = tf.ragged.map_flat_values(character_table(self._categories, -1).lookup, chars)
        if self.drop_unknown:
            ids = tf.ragged.boolean_mask(ids, ids >= 0)
        else:
            ids = tf.ragged.map_flat_values(lambda v: tf.where(v >= 0, v, self._unknown), ids)
        return ids[:, : self.length].to_tensor(default_value=self._blank, shape=[None, self.length])

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return (input_shape[0], self.length)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alphabet": self.alphabet, "length": self.length,
                "drop_unknown": self.drop_unknown}  # fmt: skip


def keras_layers(preprocessor: Any) -> list[keras.layers.Layer]:
    """The Keras layers from a string tensor (batch, 1) to ``preprocessor``'s model input: the one place a
    preprocessor meets its Keras twin (the NumPy side never imports TensorFlow)."""
    if isinstance(preprocessor, BagOfWords):
        return bag_of_words_layers(preprocessor)
    if isinstance(preprocessor, SequenceVectorizer):
        return int_vectorization(preprocessor)
    if isinstance(preprocessor, CharacterEncoder):
        return [CharacterIds(preprocessor.alphabet, preprocessor.length, preprocessor.drop_unknown)]
    raise TypeError(f"no Keras layers for a {type(preprocessor).__name__}")
