"""The Keras side of ``reviewlens.text``: the registered standardization and TextVectorization layers.

Importing this module imports TensorFlow and registers the custom layers (``reviewlens.models.layers``).
Import it (``import reviewlens`` is not enough on its own, ``reviewlens.load`` does it for you) before
``keras.saving.load_model`` on a reviewlens model.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from reviewlens.models.layers import RowMean  # also registers the recipes' other custom layers
from reviewlens.sequences import SequenceVectorizer
from reviewlens.text import PUNCTUATION, SEPARATORS, BagOfWords


def _char_class(chars: str) -> str:
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"


_SPACE_REGEX = _char_class(SEPARATORS)
_PUNCTUATION_REGEX = _char_class(PUNCTUATION)


@keras.saving.register_keras_serializable(package="reviewlens", name="standardize")
def standardize(texts: tf.Tensor) -> tf.Tensor:
    """``reviewlens.text.standardize`` as TensorFlow ops, for use inside TextVectorization."""
    texts = tf.strings.lower(texts)  # ASCII letters only, as Keras' default
    texts = tf.strings.regex_replace(texts, _SPACE_REGEX, " ")
    return tf.strings.regex_replace(texts, _PUNCTUATION_REGEX, "")


@keras.saving.register_keras_serializable(package="reviewlens", name="standardize_split_punctuation")
def standardize_split_punctuation(texts: tf.Tensor) -> tf.Tensor:
    """``lower_and_split_punctuation`` as TensorFlow ops: ``<br />`` removed, each punctuation character apart."""
    texts = tf.strings.lower(texts)
    texts = tf.strings.regex_replace(texts, _SPACE_REGEX, " ")
    texts = tf.strings.regex_replace(texts, "<br */?>", " ")
    return tf.strings.regex_replace(texts, "(" + _PUNCTUATION_REGEX + ")", r" \1 ")


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
    from reviewlens.models.layers import FitLength

    if not vectorizer.words:
        raise ValueError("the sequence vectorizer has no vocabulary yet")
    return [
        keras.layers.TextVectorization(
            standardize=standardize, split="whitespace", output_mode="int", vocabulary=vectorizer.words,
            name="text_vectorization",
        ),
        FitLength(vectorizer.length, vectorizer.truncate, vectorizer.padding, name="fit_length"),
    ]  # fmt: skip
