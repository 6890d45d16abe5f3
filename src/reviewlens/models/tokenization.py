"""The trainable tokenization layer: character patterns learned as weights, matched over one-hot text.

A port to Keras 3 (TensorFlow backend) of the ``tokenization-layer`` package (0.0.2), whose design this
follows: weights are ``patterns`` of shape (num_chars, pattern_len, 1, n_neurons); each pattern column is
discretised (its largest character becomes 1, a column whose sum is <= 0 becomes a wildcard); the output is
1 exactly where every non-wildcard column matches the text, a (batch, n_neurons, length, 1) map of where each
token starts, zero-padded after the last full window. The backward pass is straight-through: the gradient of
a plain convolution of the continuous patterns, times a bump function that is zero outside (0, 1).

Two ways to compute the same thing:

- ``implementation="dense"``: the published formulation, a convolution of the one-hot input
  (batch, num_chars, length, 1) with the discretised patterns. The reference.
- ``implementation="gather"`` (the default): with one-hot input the convolution is a sum, over the pattern's
  columns, of rows of the pattern table picked by character ids. Forward and backward are each one sparse
  product of the (positions x columns*characters) incidence matrix with a small table, instead of
  ``num_chars`` times more multiply-adds; the layer takes character ids (batch, length) directly, or one-hot
  input, which it turns into ids.

``pooling="sum"`` gives each token's number of matches in the text, (batch, n_neurons), instead of the map:
computed by hashing each text window and each pattern to an integer, with no (batch, n_neurons, length)
tensor, so thousands of patterns cost little more than a few. There a pattern is the string of its columns
up to its first wildcard (patterns whose wildcards all trail, as the initializers make them). Its gradient
is the map's gradient summed over positions, exactly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from reviewlens.text import characters
from reviewlens.text.characters import (
    GRAM_LENGTHS,
    CharacterEncoder,
    categories,
    corpus_ids,
    count_grams,
    greedy_cover,
    sample_grams,
    standardize_characters,
)
from reviewlens.text.keras import CharacterIds, character_table, unknown_id

__all__ = [
    "CharacterIds",
    "EmbeddingLayer",
    "PatternsInitializerGaussian",
    "PatternsInitializerMaxCover",
    "PatternsInitilizerMaxCover",
    "TokenizationLayer",
    "decode_patterns",
    "discretise",
    "one_hot_str",
    "standardize_characters",
]

_register = keras.saving.register_keras_serializable(package="reviewlens")
IMPLEMENTATIONS = ("gather", "dense")
POOLINGS = (None, "sum")
BLANK_COLUMN = "\u2588"  # how a wildcard column reads when patterns are decoded (the published logs' █)


# -- the published arithmetic -------------------------------------------------------------------------


def _bump(x: tf.Tensor, a: float = -0.2, b: float = 2.5) -> tf.Tensor:
    a = -a / (-a + 1)
    x = (1 - a) * x + a
    return (x ** (-b - 1)) / ((1 + x ** (-b) * (1 - x) ** b) ** 2 * (-x + 1) ** (-b + 1))


def straight_through_scale(patterns: tf.Tensor) -> tf.Tensor:
    """The factor on the patterns' gradient: the bump function inside (0, 1), zero outside."""
    inside = (patterns > 0.0) & (patterns < 1.0)
    safe = tf.where(inside, patterns, tf.fill(tf.shape(patterns), 0.5))
    return tf.where(inside, _bump(safe), tf.zeros_like(patterns))


def discretise(patterns: tf.Tensor) -> tf.Tensor:
    """(num_chars, pattern_len, 1, n) patterns -> 0/1: each column's largest character, all 0 where its sum <= 0."""
    largest = patterns == tf.reduce_max(patterns, axis=0, keepdims=True)
    live = tf.reduce_sum(patterns, axis=0, keepdims=True) > 0
    return tf.cast(largest & live, patterns.dtype)


# -- forward and backward, three ways -----------------------------------------------------------------


def tokenize_dense(one_hot: tf.Tensor, patterns: tf.Tensor) -> tf.Tensor:
    """The published formulation: one-hot (batch, C, T, 1) -> match map (batch, n, T, 1), by convolution."""

    @tf.custom_gradient
    def tokenize(x: tf.Tensor, w: tf.Tensor) -> Any:
        # A text shorter than a pattern has no window: it is padded to one and the window dropped, since
        # TensorFlow's convolution of a shorter input is undefined (garbage shapes since 2.21).
        length, pattern_len = tf.shape(x)[2], tf.shape(w)[1]
        windows = tf.maximum(length - pattern_len + 1, 0)

        def convolve(x: tf.Tensor, w: tf.Tensor) -> tf.Tensor:  # (batch, 1, T', n)
            full = tf.pad(x, [[0, 0], [0, 0], [0, tf.maximum(pattern_len - length, 0)], [0, 0]])
            return tf.nn.convolution(full, w)[:, :, :windows]

        discrete = discretise(w)
        sums = tf.reduce_sum(discrete, axis=[0, 1, 2])
        matches = tf.cast(convolve(x, discrete)[:, 0] == sums, x.dtype)  # (batch, T', n)
        out = _pad_map(tf.transpose(matches, [0, 2, 1]), length)

        def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            upstream = tf.transpose(upstream[:, :, :windows], [0, 3, 2, 1])  # (batch, 1, T', n)
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                z = convolve(x, w) * upstream
            dx, dw = tape.gradient(z, [x, w])
            return dx, dw * straight_through_scale(w)

        return out, grad

    return tokenize(one_hot, patterns)


def _pad_map(matches: tf.Tensor, length: tf.Tensor) -> tf.Tensor:
    """(batch, n, T') -> (batch, n, length, 1), zeros after the last full window (T' may be 0)."""
    missing = length - tf.shape(matches)[2]
    return tf.pad(matches, [[0, 0], [0, 0], [0, missing]])[..., None]


def _unfolded(ids: tf.Tensor, pattern_len: int, num_chars: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The (batch*T', pattern_len*(C+1)) 0/1 matrix with a 1 where window (b, t) has character c at column j,
    and T', the number of full windows (0 for a text shorter than a pattern)."""
    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    windows = tf.maximum(length - pattern_len + 1, 0)
    columns = tf.stack([ids[:, j : j + windows] + j * (num_chars + 1) for j in range(pattern_len)], axis=-1)
    rows = tf.repeat(tf.range(batch * windows), pattern_len)
    indices = tf.stack([rows, tf.reshape(columns, [-1])], axis=1)
    shape = tf.stack([batch * windows, pattern_len * (num_chars + 1)])
    return tf.scatter_nd(indices, tf.ones([tf.shape(indices)[0]], tf.float32), shape), windows


def _convolution_grad(ids: tf.Tensor, upstream: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """The patterns' straight-through gradient given the map's upstream gradient (batch, n, T, 1): the
    correlation of the upstream with the one-hot text, one matrix product, times the bump factor."""
    num_chars, pattern_len, n = w.shape[0], w.shape[1], w.shape[3]
    unfolded, windows = _unfolded(ids, pattern_len, num_chars)
    kept = tf.reshape(tf.transpose(upstream[:, :, :windows, 0], [1, 0, 2]), [n, -1])  # (n, batch*T')
    table_grad = tf.matmul(kept, unfolded)  # (n, L*(C+1))
    dw = tf.transpose(tf.reshape(table_grad, [n, pattern_len, num_chars + 1])[:, :, :num_chars], [2, 1, 0])
    return dw[:, :, None, :] * straight_through_scale(w)


def _convolution_map(ids: tf.Tensor, w: tf.Tensor) -> tf.Tensor:
    """The match map (batch, n, T') for any patterns, by one product of the unfolded one-hot text with the
    discretised pattern table (the general path, for patterns with a wildcard before a character)."""
    num_chars, pattern_len, n = w.shape[0], w.shape[1], w.shape[3]
    unfolded, windows = _unfolded(ids, pattern_len, num_chars)
    discrete = discretise(w)[:, :, 0, :]  # (C, L, n)
    table = tf.reshape(tf.pad(tf.transpose(discrete, [1, 0, 2]), [[0, 0], [0, 1], [0, 0]]), [-1, n])
    matches = tf.cast(tf.matmul(unfolded, table) == tf.reduce_sum(discrete, axis=[0, 1]), w.dtype)
    return tf.transpose(tf.reshape(matches, [tf.shape(ids)[0], windows, n]), [0, 2, 1])


class _Strings:
    """The patterns as strings (their columns before the first wildcard) and, for every window of a text, which
    pattern prefix of each length it starts with: found by hashing, level by level, with no per-pattern work
    per position. A prefix of length l is numbered among the distinct l-prefixes of the patterns; a window's
    l-prefix number is looked up from its (l-1)-prefix number and its l-th character, so keys stay small
    whatever the patterns' length."""

    def __init__(self, ids: tf.Tensor, w: tf.Tensor):
        num_chars, pattern_len, n = w.shape[0], w.shape[1], w.shape[3]
        discrete = discretise(w)[:, :, 0, :]  # (C, L, n)
        ones = tf.reduce_sum(discrete, axis=0)  # (L, n): 1 a character, 0 a wildcard, more a tie
        live = tf.cast(ones > 0, tf.int32)
        self.length = tf.reduce_sum(tf.math.cumprod(live, axis=0), axis=0)  # columns before the first wildcard
        self.prefix = tf.reduce_sum(live, axis=0) == self.length  # no character after a wildcard
        inside = tf.range(pattern_len)[:, None] < self.length[None, :]
        self.matchable = tf.reduce_all(tf.where(inside, ones == 1, True), axis=0)  # no tied column
        chars = tf.cast(tf.argmax(w[:, :, 0, :], axis=0), tf.int64)  # (L, n)

        batch, text = tf.shape(ids)[0], tf.shape(ids)[1]
        self.windows = windows = tf.maximum(text - pattern_len + 1, 0)
        digits = tf.cast(tf.minimum(ids, num_chars - 1), tf.int64)
        pattern_id = tf.zeros([n], tf.int64)  # every pattern's 0-prefix is the empty string, number 0
        window_id = tf.zeros([batch, windows], tf.int64)  # and so is every window's
        self.level_id = pattern_id  # each pattern's number among the prefixes of its own length
        found, sizes = [window_id], [tf.constant(1, tf.int64)]
        for size in range(1, pattern_len + 1):
            longer = self.length >= size
            keys = tf.where(longer, pattern_id * num_chars + chars[size - 1], -1)
            distinct = tf.sort(tf.unique(tf.boolean_mask(keys, longer))[0])
            pattern_id = tf.where(longer, tf.searchsorted(distinct, keys, out_type=tf.int64), -1)
            self.level_id = tf.where(self.length == size, pattern_id, self.level_id)
            window_key = window_id * num_chars + digits[:, size - 1 : size - 1 + windows]
            at = tf.searchsorted(distinct, tf.reshape(window_key, [-1]), out_type=tf.int64)
            at = tf.reshape(at, [batch, windows])
            padded = tf.concat([distinct, [-1]], axis=0)  # a search past the end lands on -1
            hit = (window_id >= 0) & (ids[:, size - 1 : size - 1 + windows] < num_chars)
            hit &= tf.gather(padded, at) == window_key
            window_id = tf.where(hit, at, -1)
            found.append(window_id)
            sizes.append(tf.shape(distinct, out_type=tf.int64)[0])
        self.found = tf.stack(found, axis=1)  # (batch, L+1, T'): each window's prefix number of each length
        self.offsets = tf.cumsum(tf.stack(sizes), exclusive=True)  # the numbers of all lengths in one range
        self.total = tf.reduce_sum(tf.stack(sizes))

    def map(self) -> tf.Tensor:
        """(batch, n, T') 1 where the pattern's string starts (for patterns whose wildcards trail)."""
        starts = tf.gather(self.found, self.length, axis=1) == self.level_id[None, :, None]
        return tf.cast(starts & self.matchable[None, :, None], tf.float32)

    def counts(self) -> tf.Tensor:
        """(batch, n) how often each pattern's string occurs."""
        batch = tf.cast(tf.shape(self.found)[0], tf.int64)
        slots = self.found + self.offsets[None, :, None] + tf.range(batch)[:, None, None] * self.total
        per_prefix = tf.math.bincount(
            tf.boolean_mask(slots, self.found >= 0), minlength=batch * self.total,
            maxlength=batch * self.total, dtype=tf.float32,
        )  # fmt: skip
        column = tf.gather(self.offsets, self.length) + self.level_id
        totals = tf.gather(tf.reshape(per_prefix, [batch, self.total]), column, axis=1)
        return tf.where(self.matchable[None, :], totals, tf.zeros_like(totals))


def tokenize_gather(ids: tf.Tensor, patterns: tf.Tensor) -> tf.Tensor:
    """Character ids (batch, T), ``C`` for a blank -> the same match map as ``tokenize_dense`` and the same
    patterns' gradient: the map by hashing windows (a product with the pattern table for patterns with a
    wildcard before a character), the gradient by one product of the upstream with the unfolded text."""

    @tf.custom_gradient
    def tokenize(w: tf.Tensor) -> Any:
        strings = _Strings(ids, w)
        matches = tf.cond(
            tf.reduce_all(strings.prefix),
            strings.map,
            lambda: tf.where(strings.prefix[None, :, None], strings.map(), _convolution_map(ids, w)),
        )
        out = _pad_map(matches, tf.shape(ids)[1])

        def grad(upstream: tf.Tensor) -> tf.Tensor:
            return _convolution_grad(ids, upstream, w)

        return out, grad

    return tokenize(patterns)


def count_tokens(ids: tf.Tensor, patterns: tf.Tensor) -> tf.Tensor:
    """Character ids (batch, T) -> each pattern's number of matches (batch, n): ``tokenize_gather`` summed over
    positions, for patterns whose wildcards trail (a pattern is the string before its first wildcard), by
    hashing, with a gradient that needs no (batch, n, T) tensor either."""
    num_chars, pattern_len = patterns.shape[0], patterns.shape[1]

    @tf.custom_gradient
    def count(w: tf.Tensor) -> Any:
        strings = _Strings(ids, w)
        windows = strings.windows

        def grad(upstream: tf.Tensor) -> tf.Tensor:
            # d/dw of sum_t conv(t): per column j, how often each character stands j after a window's start.
            one_hot = tf.one_hot(ids, num_chars + 1, dtype=w.dtype)[:, :, :num_chars]  # (batch, T, C)
            running = tf.pad(tf.cumsum(one_hot, axis=1), [[0, 0], [1, 0], [0, 0]])
            histogram = tf.stack([running[:, j + windows] - running[:, j] for j in range(pattern_len)], axis=2)
            dw = tf.einsum("bn,bcl->cln", upstream, histogram)
            return dw[:, :, None, :] * straight_through_scale(w)

        return strings.counts(), grad

    return count(patterns)


# -- initializers ----------------------------------------------------------------------------------


def _noisy(one_hot_patterns: np.ndarray, blank: np.ndarray, seed: int | None, wildcard: bool) -> np.ndarray:
    """0s and 1s replaced by draws from N(0.25, 0.08) and N(0.75, 0.08); padding columns likewise (published)
    or set to -0.25, wildcards (``wildcard``)."""
    rng = np.random.default_rng(seed)
    low = rng.normal(0.25, 0.08, one_hot_patterns.shape)
    high = rng.normal(0.75, 0.08, one_hot_patterns.shape)
    values = np.where(one_hot_patterns == 1, high, low)
    if wildcard:
        values = np.where(blank[None, :, :], -0.25, values)
    return values.astype(np.float32)


@_register
class PatternsInitializerMaxCover(keras.initializers.Initializer):
    """Patterns initialized from the character n-grams of a text corpus (the published "max cover").

    ``strategy="sample"`` (published): for each neuron a length drawn uniformly from ``gram_lens``, then a gram of
    that length drawn in proportion to its count among those seen more than ``filter_over`` times.
    ``strategy="greedy"``: each new pattern the gram that covers the most corpus text not yet covered.
    Each gram is one-hot encoded and padded to the longest length; 0s and 1s become draws from N(0.25, 0.08)
    and N(0.75, 0.08). ``padding="wildcard"`` makes the padding columns wildcards (-0.25), so that a short gram
    matches as itself; ``padding="noise"`` (published) fills them with noise like any 0, which turns them into
    random characters a text almost never has.

    ``text_corpus`` is a string or texts; ``chars`` the alphabet. The corpus is counted when the initializer is
    made; a saved model keeps its weights, not this initializer's corpus.
    """

    def __init__(
        self,
        text_corpus: str | Iterable[str] = "",
        chars: str = "",
        gram_lens: Sequence[int] = GRAM_LENGTHS,
        filter_over: int = 1,
        strategy: str = "sample",
        padding: str = "noise",
        seed: int | None = None,
        pattern_len: int | None = None,
    ):
        if strategy not in ("sample", "greedy"):
            raise ValueError(f"strategy must be 'sample' or 'greedy', not {strategy!r}")
        if padding not in ("noise", "wildcard"):
            raise ValueError(f"padding must be 'noise' or 'wildcard', not {padding!r}")
        self.chars, self.gram_lens, self.filter_over = chars, tuple(int(g) for g in gram_lens), int(filter_over)
        self.strategy, self.padding, self.seed = strategy, padding, seed
        self.pattern_len = pattern_len or max(self.gram_lens)
        texts = [text_corpus] if isinstance(text_corpus, str) else list(text_corpus)
        encoder = CharacterEncoder(alphabet=chars, length=max(map(len, texts), default=1) or 1)
        self.num_chars = encoder.num_chars
        self._corpus = corpus_ids(texts, encoder)
        self._grams = count_grams(self._corpus, self.num_chars, self.gram_lens, self.filter_over)

    def grams(self, n: int) -> list[np.ndarray]:
        """The ``n`` grams (category ids) the patterns start from. Greedy cover runs out when every distinct gram
        is taken (a small corpus): the rest are drawn as published, so some patterns repeat."""
        rng = np.random.default_rng(self.seed)
        if self.strategy == "greedy":
            chosen = greedy_cover(self._corpus, self._grams, n, self.num_chars)
            return chosen + sample_grams(self._grams, n - len(chosen), rng)
        return sample_grams(self._grams, n, rng)

    def __call__(self, shape: Sequence[int], dtype: Any = None, **kwargs: Any) -> Any:
        num_chars, pattern_len, _, n = (int(s) for s in shape)
        if num_chars != self.num_chars or pattern_len < max(self.gram_lens):
            raise ValueError(
                f"patterns of shape {tuple(shape)} do not fit {self.num_chars} characters and grams up to "
                f"{max(self.gram_lens)} long"
            )
        grams = self.grams(n)
        one_hot = np.zeros((num_chars, pattern_len, n), np.float32)
        blank = np.ones((pattern_len, n), bool)
        for i, gram in enumerate(grams):
            one_hot[gram, np.arange(len(gram)), i] = 1.0
            blank[: len(gram), i] = False
        return tf.constant(_noisy(one_hot, blank, self.seed, self.padding == "wildcard")[:, :, None, :])

    def get_config(self) -> dict[str, Any]:
        return {"gram_lens": list(self.gram_lens), "filter_over": self.filter_over, "strategy": self.strategy,
                "padding": self.padding, "seed": self.seed}  # fmt: skip


#: The published class name, misspelled; the same class.
PatternsInitilizerMaxCover = PatternsInitializerMaxCover


@_register
class PatternsInitializerGaussian(keras.initializers.Initializer):
    """Patterns drawn from N(mean, stddev): the defaults keep nearly every value in (0, 1)."""

    def __init__(self, mean: float = 0.5, stddev: float = 0.15, seed: int | None = None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape: Sequence[int], dtype: Any = None, **kwargs: Any) -> Any:
        rng = np.random.default_rng(self.seed)
        return tf.constant(rng.normal(self.mean, self.stddev, tuple(shape)).astype(np.float32))

    def get_config(self) -> dict[str, Any]:
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


# -- layers ----------------------------------------------------------------------------------------


@_register
class TokenizationLayer(keras.layers.Layer):
    """Learned character patterns matched over a text: the map of where each starts, or how often it occurs.

    Input: one-hot characters (batch, num_chars, length, 1), as published, or character ids (batch, length)
    with ``num_chars`` given (id ``num_chars`` is a blank). Output: (batch, n_neurons, length, 1) 0/1, or with
    ``pooling="sum"`` (batch, n_neurons) counts. ``constrain=True`` keeps pattern values inside [0.01, 0.99]
    after each update, except wildcard columns, so that no column drifts to where the gradient is zero.
    """

    def __init__(
        self,
        n_neurons: int,
        initializer: Any = None,
        pattern_lens: int = max(GRAM_LENGTHS),
        num_chars: int | None = None,
        pooling: str | None = None,
        implementation: str = "gather",
        constrain: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, not {implementation!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        if pooling is not None and implementation == "dense":
            raise ValueError("pooling='sum' counts by hashing; it has no dense implementation")
        self.n_neurons, self.pattern_lens, self.num_chars = int(n_neurons), int(pattern_lens), num_chars
        self.pooling, self.implementation, self.constrain = pooling, implementation, constrain
        self.initializer = initializer if initializer is not None else PatternsInitializerGaussian()

    def build(self, input_shape: Sequence[int | None]) -> None:
        self.num_chars = self._alphabet_size(input_shape)
        shape = (self.num_chars, self.pattern_lens, 1, self.n_neurons)
        initial = _initial_patterns(self.initializer, shape)
        constraint = _KeepInside() if self.constrain else None
        self.patterns = self.add_weight(
            name="patterns", shape=shape, initializer=lambda shape, dtype=None: initial, constraint=constraint,
        )  # fmt: skip

    def _alphabet_size(self, input_shape: Sequence[int | None]) -> int:
        """The patterns' number of characters: ``num_chars`` where given, else the corpus initializer's alphabet,
        else the one-hot input's height. A one-hot input of another height reads as the same text: a column whose
        1 is past the alphabet is a character outside it (the published example builds on 31 rows, trains on 30)."""
        height = input_shape[1] if len(input_shape) == 4 else None
        size = self.num_chars if self.num_chars is not None else getattr(self.initializer, "num_chars", height)
        if size is None:
            raise ValueError("character ids need TokenizationLayer(num_chars=...): the alphabet's size")
        if height is not None and height != size:
            warnings.warn(
                f"a one-hot input of {height} rows for patterns of {size} characters: rows past {size} read as "
                "characters outside the alphabet",
                stacklevel=2,
            )
        return int(size)

    def call(self, inputs: Any) -> Any:
        inputs = tf.convert_to_tensor(inputs)
        if self.implementation == "dense":
            fits = inputs.shape.rank == 4 and inputs.shape[1] == self.num_chars
            one_hot = inputs if fits else _one_hot_input(_ids_of(inputs, self.num_chars), self.num_chars)
            return tokenize_dense(tf.cast(one_hot, self.patterns.dtype), tf.identity(self.patterns.value))
        ids = _ids_of(inputs, self.num_chars)
        if self.pooling == "sum":
            return count_tokens(ids, tf.identity(self.patterns.value))
        return tokenize_gather(ids, tf.identity(self.patterns.value))

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        if self.pooling == "sum":
            return (input_shape[0], self.n_neurons)
        return (input_shape[0], self.n_neurons, input_shape[-2 if len(input_shape) == 4 else -1], 1)

    def get_config(self) -> dict[str, Any]:
        serializable = isinstance(self.initializer, PatternsInitializerGaussian)
        return {
            **super().get_config(),
            "n_neurons": self.n_neurons,
            "pattern_lens": self.pattern_lens,
            "num_chars": self.num_chars,
            "pooling": self.pooling,
            "implementation": self.implementation,
            "constrain": self.constrain,
            # A corpus initializer is not saved (its corpus is not a setting): a loaded layer gets its weights.
            "initializer": keras.initializers.serialize(self.initializer) if serializable else None,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TokenizationLayer:
        config = dict(config)
        initializer = config.pop("initializer", None)
        return cls(initializer=keras.initializers.deserialize(initializer) if initializer else "zeros", **config)


def _initial_patterns(initializer: Any, shape: tuple[int, ...]) -> tf.Tensor:
    """The initializer's patterns, computed now, eagerly. Keras defers a variable's initializer while it builds a
    model by tracing its call, and one that raises there stays in Keras' global list of variables to initialize:
    every later model's build then fails on it and leaves its own variables unmade (BatchNormalization's
    ``'NoneType' object has no attribute 'assign'``). Computed here, a bad shape raises from ``build``, before any
    variable exists."""
    with tf.init_scope():
        return tf.convert_to_tensor(keras.initializers.get(initializer)(shape, dtype="float32"), tf.float32)


def _ids_of(inputs: tf.Tensor, num_chars: int | None) -> tf.Tensor:
    if inputs.shape.rank == 2:
        return tf.cast(inputs, tf.int32)
    if inputs.shape.rank != 4:
        raise ValueError(f"the tokenization layer takes ids (batch, length) or one-hot (batch, C, length, 1), "
                         f"not a tensor of shape {inputs.shape}")  # fmt: skip
    one_hot = inputs[..., 0]
    ids = tf.cast(tf.argmax(one_hot, axis=1), tf.int32)
    inside = (tf.reduce_sum(one_hot, axis=1) > 0) & (ids < num_chars)  # a row past the alphabet: outside it
    return tf.where(inside, ids, tf.fill(tf.shape(ids), num_chars))


def _one_hot_input(ids: tf.Tensor, num_chars: int | None) -> tf.Tensor:
    assert num_chars is not None
    return tf.transpose(tf.one_hot(tf.cast(ids, tf.int32), num_chars + 1)[:, :, :num_chars], [0, 2, 1])[..., None]


@_register
class _KeepInside(keras.constraints.Constraint):
    """Clip pattern values into [0.01, 0.99], leaving wildcard columns (sum <= 0) as they are."""

    def __call__(self, w: Any) -> Any:
        live = tf.reduce_sum(w, axis=0, keepdims=True) > 0
        return tf.where(live, tf.clip_by_value(w, 0.01, 0.99), w)


@_register
class EmbeddingLayer(keras.layers.Layer):
    """A trainable (categories, k) matrix applied to (batch, seq, categories): an embedding of one-hot input
    that need not be a model's first layer (unlike ``keras.layers.Embedding``)."""

    def __init__(self, embedding_length: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.embedding_length = int(embedding_length)

    def build(self, input_shape: Sequence[int | None]) -> None:
        self.embedding_matrix = self.add_weight(
            name="embedding_matrix", shape=(input_shape[-1], self.embedding_length), initializer="glorot_uniform"
        )

    def call(self, x: Any) -> Any:
        return keras.ops.matmul(x, self.embedding_matrix)

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], self.embedding_length)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "embedding_length": self.embedding_length}


def one_hot_str(text: Any, chars: str) -> Any:
    """``text`` one-hot encoded by ``chars``, an int32 (categories, characters) matrix, as published.

    A Python string gives NumPy (``reviewlens.text.characters.one_hot_str``); a string tensor gives a tensor of the
    same values by TensorFlow ops, so that it maps over a ``tf.data`` dataset of reviews as the published
    example does. The text is encoded as it is (standardize it first).
    """
    if isinstance(text, str):
        return characters.one_hot_str(text, chars)
    text = tf.convert_to_tensor(text, tf.string)
    if text.shape.rank != 0:
        raise ValueError(f"one_hot_str encodes one string, not a tensor of shape {text.shape}: map it over them")
    cats = categories(chars)
    ids = character_table(cats, unknown_id(cats)).lookup(tf.strings.unicode_split(text, "UTF-8"))
    return tf.transpose(tf.one_hot(ids, len(cats) + 1, dtype=tf.int32)[:, : len(cats)])


def decode_patterns(patterns: Any, chars: str) -> list[str]:
    """Each pattern as text: its columns' characters, ``█`` for a wildcard (and ``?`` for a tied column)."""
    values = np.asarray(patterns)[:, :, 0, :]
    cats = categories(chars)
    largest = values == values.max(axis=0, keepdims=True)
    live = values.sum(axis=0) > 0
    decoded = []
    for n in range(values.shape[2]):
        columns = []
        for j in range(values.shape[1]):
            hits = np.flatnonzero(largest[:, j, n])
            columns.append(BLANK_COLUMN if not live[j, n] else cats[hits[0]] if len(hits) == 1 else "?")
        decoded.append("".join(columns))
    return decoded
