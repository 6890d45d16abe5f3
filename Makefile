# The README's two commands: `make run` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-full lint docs bench clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/reviewlens quickstart

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/mypy

# The reference in docs/ as a site (site/index.html); --strict: a dead link or anchor fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# The browser test drives Debian's chromium; install it when it is missing and we are root.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "chromium is not installed and could not be (root and apt-get needed): tests/test_browser.py will be skipped"

# The default suite (at most 7 minutes on 2 cores), in two processes (pytest-xdist): its last line says the time
# against that budget, and REVIEWLENS_SUITE_BUDGET=enforce makes going over it fail. The tests that train on the
# full IMDB data are `make test-full` (they skip without ../shared/data), which CI runs after it.
test: lint docs browser
	$(BIN)/python -m pytest -m "not full_data" -n 2

test-full: $(STAMP)
	$(BIN)/python -m pytest -m full_data

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python benchmarks/bench_bow_bigram.py

clean:
	rm -rf $(VENV) runs build site *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
