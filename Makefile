# Everything starts from a fresh machine with only python3 and make: each target sets up .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
REF_STAMP := $(VENV)/.installed-reference

.PHONY: setup demo explore test install-check lint reference bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(STAMP)

# The main job: generate text with every strategy on the bundled default model.
demo: setup
	$(BIN)/python -m minigpt demo

# The decoding explorer: a page on http://127.0.0.1:8015/ that steps through any strategy.
explore: setup
	$(BIN)/python -m minigpt explore

# The whole suite. Reference-parity tests are reported as skipped without torch + transformers.
# "slow or not slow" brings back the install check that a plain `pytest` leaves out.
test: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

# Only the install check: build the sdist and wheel, install the wheel into a fresh venv and run
# minigpt from a directory outside the checkout (needs PyPI or pip's cache for the dependencies).
install-check: setup
	$(BIN)/python -m pytest -q -m slow tests/test_install.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# torch is pinned to the CPU wheel these machines hold on disk (see pyproject.toml).
$(REF_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,reference]'
	touch $@

# Only the parity tests against torch + transformers; a skip here is a failure.
reference: $(REF_STAMP)
	MINIGPT_REQUIRE_REFERENCE=1 $(BIN)/python -m pytest -q -m reference

bench: $(REF_STAMP)
	$(BIN)/python benchmarks/bench_generate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
