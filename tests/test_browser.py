"""The page at `/` in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .test_serving_process import server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (`make test` installs it as root)"
)


def test_page_shows_label_score_and_words_as_you_type(trained_run: Path, three_label_run: Path, tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    with server(str(trained_run), str(three_label_run)) as (_, url, _), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            page = browser.new_page()
            explains: list[str] = []
            page.on("request", lambda request: explains.append(request.url) if "/v1/explain" in request.url else None)
            page.goto(url + "/")
            page.wait_for_selector("#model option", state="attached")  # the models have loaded
            assert not page.locator("#terms-heading").is_visible()  # nothing to explain yet

            text = "A wonderful film, superb and moving."
            page.locator("#text").press_sequentially(text, delay=20)  # a keystroke every 20 ms
            page.wait_for_function("document.querySelector('#label').textContent !== ''")
            page.wait_for_timeout(400)  # let the last debounced answer land

            expected = httpx.post(f"{url}/v1/explain", json={"text": text, "top": 10}).json()
            assert page.locator("#label").text_content() == expected["label"]
            assert page.locator("#score").text_content() == f"{expected['score'] * 100:.1f}% positive"
            shown = page.locator("#terms .term").all_text_contents()  # "wonderful +0.0561", largest first
            assert [line.rsplit(" ", 1)[0] for line in shown] == [term["term"] for term in expected["terms"]]
            # The figures are in the API's and the command line's unit (a change in probability), and say so.
            assert [line.rsplit(" ", 1)[1].replace("\u2212", "-") for line in shown] == [
                f"{term['contribution']:+.4f}" for term in expected["terms"]
            ]
            assert "change in the probability of positive" in page.locator("#terms-unit").text_content()
            assert len(shown) >= 3  # the review has words the model knows
            assert len(explains) < len(text) / 4  # debounced: not one request per keystroke
            assert page.locator("#terms-heading").is_visible()

            page.locator("#text").fill("")
            page.locator("#text").press_sequentially("dull boring tedious", delay=20)
            page.wait_for_function(
                "expected => document.querySelector('#score').textContent === expected",
                arg=f"{httpx.post(f'{url}/v1/predict', json={'text': 'dull boring tedious'}).json()['score'] * 100:.1f}"
                "% positive",
            )
            assert page.locator("#label").text_content() in ("positive", "negative")
            assert not page.locator("#probabilities").is_visible()  # two labels: the score says it all

            # A run of three labels: the answer, and every label's probability in the run's order.
            page.select_option("#model", three_label_run.name)
            text = "an okay film, ordinary"
            expected = httpx.post(f"{url}/v1/predict", json={"text": text, "model": three_label_run.name}).json()
            page.locator("#text").fill(text)
            page.wait_for_function(
                "expected => document.querySelector('#label').textContent === expected", arg=expected["label"]
            )
            assert page.locator("#probabilities").is_visible()
            assert page.locator("#probabilities .name").all_text_contents() == ["negative", "neutral", "positive"]
            assert page.locator("#probabilities .value").all_text_contents() == [
                f"{expected['probabilities'][name] * 100:.1f}%" for name in ("negative", "neutral", "positive")
            ]
            assert page.locator("#probabilities .answer").text_content() == expected["label"] == "neutral"
        finally:
            browser.close()
