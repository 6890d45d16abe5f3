"""The modelkit library over runs: the chain's pieces, scores equal to the run's, several runs, caching, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelkit.core.errors import ModelsNotFound
from modelkit.core.library import ConfigurationNotFoundException

import reviewlens
from reviewlens.data import Dataset, sample_path
from reviewlens.errors import ReviewlensError
from reviewlens.library import OUT_OF_VOCABULARY, PADDING, load_library


@pytest.fixture(scope="module")
def sample_test_texts() -> list[str]:
    texts, _ = Dataset(sample_path()).read("test")
    assert len(texts) == 1000
    return texts


@pytest.fixture(scope="module")
def unigram_run(session_aclimdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from reviewlens.training import train

    out = tmp_path_factory.mktemp("runs") / "unigram"
    train("bow-unigram", session_aclimdb, out, epochs=2)
    return out


@pytest.fixture(scope="module")
def library(trained_run: Path, unigram_run: Path) -> Any:
    return load_library([trained_run, unigram_run])


def test_sentiment_scores_equal_the_runs_on_1000_test_reviews(library: Any, trained_run: Path, sample_test_texts):
    results = library.get("imdb_sentiment").predict_batch([{"text": text} for text in sample_test_texts])
    expected = reviewlens.load(trained_run).predict(sample_test_texts)
    scores = np.array([result.score for result in results])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert [result.label for result in results] == ["positive" if p >= 0.5 else "negative" for p in expected]
    assert scores.std() > 0.01  # the reviews do move the score: the comparison means something


def test_keras_runtime_classifier_matches_too(trained_run: Path, sample_test_texts):
    library = load_library([trained_run], runtime="keras")
    assert library.get("imdb_classifier").run.runtime == "keras"
    texts = [*sample_test_texts[:200], "caf\u00c9 x\u0085y a\u2028b", "", "!!!"]
    results = library.get("imdb_sentiment").predict_batch([{"text": text} for text in texts])
    expected = reviewlens.load(trained_run).predict(texts)
    np.testing.assert_allclose([r.score for r in results], expected, rtol=0, atol=1e-5)


def test_tokenizer_uses_the_training_standardization(library: Any):
    tokenizer = library.get("imdb_tokenizer")
    assert tokenizer.predict("Caf\u00c9, <br />GREAT\u2028film!") == ["caf\u00c9", "br", "great", "film"]
    assert tokenizer.predict_batch(["A b", ""]) == [["a", "b"], []]


def test_vectorizer_ids_padding_out_of_vocabulary_and_length(library: Any):
    vectorizer = library.get("imdb_vectorizer")
    film, the = vectorizer.predict(["film", "the"])
    assert film >= 2 and the >= 2 and film != the
    assert vectorizer.predict(["film", "qwertyuiop", "the"]) == [film, OUT_OF_VOCABULARY, the]
    assert vectorizer.predict(["film", "qwertyuiop", "the"], drop_oov=True) == [film, the]
    assert vectorizer.predict(["film", "the"], length=4) == [film, the, PADDING, PADDING]
    assert vectorizer.predict(["film", "the", "film"], length=2) == [film, the]
    assert vectorizer.predict_batch([["film"], []], length=1) == [[film], [PADDING]]


def test_classifier_reads_the_vectorizers_ids(library: Any, trained_run: Path):
    tokens = library.get("imdb_tokenizer").predict("The film was wonderful, a superb qwertyuiop cast.")
    ids = library.get("imdb_vectorizer").predict(tokens, length=len(tokens) + 3)
    expected = reviewlens.load(trained_run).predict(["The film was wonderful, a superb qwertyuiop cast."])[0]
    assert library.get("imdb_classifier").predict(ids) == pytest.approx(expected, abs=1e-6)


def test_several_runs_side_by_side(library: Any, trained_run: Path, unigram_run: Path):
    name = json.loads((unigram_run / "metadata.json").read_text())["name"]
    assert {"imdb_sentiment", f"imdb_sentiment_{name}", f"imdb_classifier_{name}"} <= set(library.models)
    texts = ["wonderful superb film", "dull boring tedious plot", "the movie"]
    for key, run in (("imdb_sentiment", trained_run), (f"imdb_sentiment_{name}", unigram_run)):
        scores = [r.score for r in library.get(key).predict_batch([{"text": t} for t in texts])]
        np.testing.assert_allclose(scores, reviewlens.load(run).predict(texts), atol=1e-6)
    first = library.get("imdb_sentiment").predict({"text": texts[0]}).score
    assert first != library.get(f"imdb_sentiment_{name}").predict({"text": texts[0]}).score


def test_predict_gen_streams_in_batches(library: Any):
    consumed = []

    def items():
        for i in range(10):
            consumed.append(i)
            yield {"text": f"film number {i}"}

    batches: list[int] = []
    stream = library.get("imdb_sentiment").predict_gen(
        items(), batch_size=4, _callback=lambda step, batch, predictions: batches.append(len(batch))
    )
    first = next(stream)
    assert first.label in ("positive", "negative")
    assert len(consumed) == 4  # it read one batch, not the whole input
    assert len([first, *stream]) == 10
    assert batches == [4, 4, 2]


def test_lazy_library_loads_on_first_get_and_unknown_names_get_modelkits_error(trained_run: Path):
    library = load_library([trained_run], lazy=True)
    assert library.models == {}
    with pytest.raises(ConfigurationNotFoundException, match=r"Did you mean \"imdb_sentiment\""):
        library.get("imdb_sentimnt")
    assert library.get("imdb_sentiment").predict({"text": "film"}).label in ("positive", "negative")
    assert "imdb_classifier" in library.models
    with pytest.raises(ModelsNotFound, match="imdb_nothing"):
        load_library([trained_run]).get("imdb_nothing")


def test_native_cache_answers_repeats_without_the_model(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    library = load_library([trained_run], cache={"cache_provider": "native", "maxsize": 100})
    classifier = library.get("imdb_classifier")
    calls: list[int] = []
    original = classifier._predict_batch
    monkeypatch.setattr(classifier, "_predict_batch", lambda items: calls.append(len(items)) or original(items))
    sentiment = library.get("imdb_sentiment")
    first = sentiment.predict_batch([{"text": "superb film"}, {"text": "dull plot"}])
    again = sentiment.predict_batch([{"text": "dull plot"}, {"text": "superb film"}, {"text": "new"}])
    assert calls == [2, 1]  # only the new review reached the model
    assert [again[1], again[0]] == first


class FakeRedis:
    """The two calls modelkit's RedisCache makes, over a dict shared between libraries."""

    def __init__(self) -> None:
        self.store: dict[bytes, bytes] = {}
        self.hits = 0

    def get(self, key: bytes) -> bytes | None:
        self.hits += key in self.store
        return self.store.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.store[key] = value


def test_redis_cache_keys_name_the_run(
    trained_run: Path, tmp_path: Path, session_aclimdb: Path, monkeypatch: pytest.MonkeyPatch
):
    from reviewlens.training import train

    redis = FakeRedis()
    monkeypatch.setattr("modelkit.utils.cache.connect_redis", lambda host, port: redis)
    settings = {"cache_provider": "redis", "host": "127.0.0.1", "port": 6379}
    item = {"text": "wonderful superb film, a masterpiece"}

    old = load_library([trained_run], cache=settings).get("imdb_sentiment").predict(item)
    assert len(redis.store) == 1 and redis.hits == 0
    assert load_library([trained_run], cache=settings).get("imdb_sentiment").predict(item) == old
    assert redis.hits == 1  # a new library over the same run answers from Redis

    # Retrain: a run of the same name (so the same configuration key) with new weights.
    retrained = tmp_path / trained_run.name
    train("bow-bigram", session_aclimdb, retrained, epochs=1, seed=99)
    new = load_library([retrained], cache=settings).get("imdb_sentiment").predict(item)
    assert redis.hits == 1 and len(redis.store) == 2
    assert new.score == pytest.approx(float(reviewlens.load(retrained).predict([item["text"]])[0]), abs=1e-6)
    assert new.score != old.score


def test_modelkit_finds_the_models_in_the_module_with_its_asset_override(
    trained_run: Path, monkeypatch: pytest.MonkeyPatch
):
    import modelkit

    import reviewlens.library

    monkeypatch.setenv("MODELKIT_REVIEWLENS_RUN_FILE", str(trained_run))
    library = modelkit.ModelLibrary(models=reviewlens.library, required_models=["imdb_sentiment"])
    score = library.get("imdb_sentiment").predict({"text": "superb film"}).score
    assert score == pytest.approx(float(reviewlens.load(trained_run).predict(["superb film"])[0]), abs=1e-6)


@pytest.mark.parametrize("lazy", [False, True])
def test_missing_or_corrupt_runs_fail_at_load_with_one_line(trained_run: Path, tmp_path: Path, lazy: bool):
    with pytest.raises(ReviewlensError, match="nowhere") as missing:
        load_library([trained_run, tmp_path / "nowhere"], lazy=lazy)
    assert "\n" not in str(missing.value)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_run, corrupt)
    (corrupt / "weights.npz").write_bytes(b"not weights")
    with pytest.raises(ReviewlensError, match=r"corrupt/weights\.npz") as bad:
        load_library([corrupt], lazy=lazy)
    assert "\n" not in str(bad.value)
    with pytest.raises(ReviewlensError, match="no run directories"):
        load_library([])
    with pytest.raises(ReviewlensError, match="given twice"):
        load_library([trained_run, trained_run])


def test_the_tutorials_chain_serves_a_sequence_run(sequence_run: Path, sample_test_texts):
    # The modelkit tutorial's own model (an embedding summed over the first 64 token ids), run by its chain.
    library = load_library([sequence_run])
    texts = [*sample_test_texts[:300], "caf\u00c9 x\u0085y a\u2028b", "", "!!!"]
    results = library.get("imdb_sentiment").predict_batch([{"text": text} for text in texts])
    run = reviewlens.load(sequence_run)
    np.testing.assert_allclose([r.score for r in results], run.predict(texts), rtol=0, atol=1e-5)
    words = run.predictor.preprocessor.words  # type: ignore[attr-defined]
    text = "The film qwertyuiop " + " ".join(sample_test_texts[0].split()[:80])  # longer than the run's 64 tokens
    tokens = library.get("imdb_tokenizer").predict(text)
    assert library.get("imdb_vectorizer").predict(tokens)[:3] == [words.index("the") + 2, words.index("film") + 2, 1]
    ids = library.get("imdb_vectorizer").predict(tokens, length=len(tokens) + 5)  # padded: cut and padded as it does
    assert library.get("imdb_classifier").predict(ids) == pytest.approx(float(run.predict([text])[0]), abs=1e-5)


def test_the_tutorials_tokenizer_alone_and_vectorizer_vocabulary(library: Any, sequence_run: Path):
    from reviewlens.library import Tokenizer

    tokenizer = Tokenizer()  # the tutorial's first call: no run, no vocabulary
    assert tokenizer.predict("Caf\u00c9, <br />GREAT film!") == ["caf\u00c9", "br", "great", "film"]
    assert list(tokenizer.predict_gen(iter(["A b", ""]), batch_size=64)) == [["a", "b"], []]
    for vectorizer in (library.get("imdb_vectorizer"), load_library([sequence_run]).get("imdb_vectorizer")):
        vocabulary = vectorizer.vocabulary
        assert len(vocabulary) > 10 and sorted(vocabulary.values()) == list(range(2, len(vocabulary) + 2))
        assert vectorizer.predict(["film"]) == [vocabulary["film"]]


#: The modelkit tutorial as a user pastes it (the header comment says what differs from the tutorial).
TUTORIAL = Path(__file__).with_name("examples") / "modelkit_imdb.txt"


def test_the_modelkit_tutorial_runs_with_its_own_vocabulary_and_keras_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runpy

    pytest.importorskip("sklearn")
    from tests.conftest import write_aclimdb

    tutorial = TUTORIAL.read_text(encoding="utf-8")
    assert "from reviewlens.library import Classifier, Tokenizer, Vectorizer" in tutorial
    assert "class Classifier" not in tutorial and "class Vectorizer" not in tutorial  # nothing of ours written out
    for published, small in (("epochs=10", "epochs=1"), ("steps_per_epoch=100", "steps_per_epoch=3"),
                             ("validation_steps=10", "validation_steps=1")):  # fmt: skip
        assert published in tutorial
        tutorial = tutorial.replace(published, small)
    write_aclimdb(tmp_path, {"train": 40, "test": 20}, bad_utf8=False)
    (tmp_path / "tutorial.py").write_text(tutorial, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(tmp_path / "tutorial.py"), run_name="__main__")

    words = (tmp_path / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
    vectorizer, classifier = namespace["vectorizer"], namespace["classifier"]
    assert vectorizer.vocabulary == {word: i for i, word in enumerate(words, start=2)}  # the tutorial's ids
    tokens = namespace["tokenized_review"]
    assert tokens[:4] == ["i", "freaking", "love", "this"]
    assert namespace["vectorized_review"] == [vectorizer.vocabulary.get(token, 1) for token in tokens]
    # The user's own model, as saved: its score of the review padded to its 64 ids.
    ids = np.zeros((1, 64), np.int32)
    ids[0, : len(tokens)] = namespace["vectorized_review"]
    expected = float(namespace["model"].predict(ids, verbose=0)[0, 0])
    assert namespace["prediction"] == pytest.approx(expected, abs=1e-6)
    assert 0.0 < namespace["prediction"] < 1.0
    # The composed model over the same assets: a label and probabilities from the user's model.
    import modelkit

    import reviewlens.library

    assets = {**namespace["VOCABULARY"], **namespace["MODEL"]}
    library = modelkit.ModelLibrary(models=reviewlens.library, configuration=assets, required_models=["imdb_sentiment"])
    sentiment = library.get("imdb_sentiment").predict({"text": namespace["review"]})
    assert sentiment.score == pytest.approx(expected, abs=1e-6)
    assert sentiment.label == ("positive" if expected >= 0.5 else "negative")
    assert classifier.predict_batch([[], [5] * 200]) == pytest.approx(
        [float(p) for p in namespace["model"].predict(np.array([[0] * 64, [5] * 64]), verbose=0)[:, 0]], abs=1e-6
    )  # an empty row is all padding; a long one is cut to the model's length


def test_a_keras_model_with_a_python_lambda_is_refused_in_one_line_unless_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras
    import modelkit

    from reviewlens.library import Classifier

    # A lambda of no globals: Keras gives a loaded lambda none of the module it came from.
    model = keras.Sequential([keras.Input((8,), dtype="int32"), keras.layers.Embedding(10, 4),
                              keras.layers.Lambda(lambda x: x[:, 0] + x[:, 1]),
                              keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    model.save(tmp_path / "lambda.keras")
    assets = {"imdb_classifier": {"asset": str(tmp_path / "lambda.keras")}}
    with pytest.raises(ReviewlensError, match=r"lambda\.keras holds a Python lambda.*safe_mode") as refused:
        modelkit.ModelLibrary(models=[Classifier], configuration=assets).get("imdb_classifier")
    assert "\n" not in str(refused.value)
    trusted = {"imdb_classifier": {**assets["imdb_classifier"], "model_settings": {"safe_mode": False}}}
    classifier = modelkit.ModelLibrary(models=[Classifier], configuration=trusted).get("imdb_classifier")
    assert classifier.predict([3, 4]) == pytest.approx(float(model.predict(np.array([[3, 4] + [0] * 6]))[0, 0]))
    # An .h5 read through Keras: the tutorial's model with its input named, so that Keras 3 can rebuild it.
    from reviewlens.models.layers import SumOverTime

    summed = keras.Sequential([keras.Input((8,), dtype="int32"), keras.layers.Embedding(10, 4), SumOverTime(),
                               keras.layers.Dense(1, activation="sigmoid")])  # fmt: skip
    summed.save(tmp_path / "imdb_model.h5")
    h5 = {"imdb_classifier": {"asset": str(tmp_path / "imdb_model.h5")}}
    classifier = modelkit.ModelLibrary(models=[Classifier], configuration=h5).get("imdb_classifier")
    assert classifier.predict([3, 4]) == pytest.approx(float(summed.predict(np.array([[3, 4] + [0] * 6]))[0, 0]))
    (tmp_path / "broken.h5").write_bytes(b"not a model")
    with pytest.raises(ReviewlensError, match=r"broken\.h5 cannot be loaded by Keras"):
        modelkit.ModelLibrary(
            models=[Classifier], configuration={"imdb_classifier": {"asset": str(tmp_path / "broken.h5")}}
        ).get("imdb_classifier")
