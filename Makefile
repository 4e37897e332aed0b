# Fresh-machine set-up: `make run` (the main job on the bundled sample) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.memtui-installed
export HF_HUB_OFFLINE := 1

.PHONY: setup run check test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/memtui run --mode cache $(ARGS)

# Lint, format, types and import contracts first: a broken layer or a type error fails fast, before the tests.
check: $(STAMP)
	$(BIN)/ruff check memtui tests bench
	$(BIN)/ruff format --check memtui tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/python -m pytest $(ARGS)

# The fast lane for iteration: no real model, no real CLI subprocess, no cluster, no slow test (the markers
# follow from what each test uses: tests/support/lanes.py), and a test that imports the model fails.
# Spread over 2 workers (pytest-xdist; ARGS="-n 0" runs it in one). Not CI's lane: `make test` is, and
# it stays in one process until the whole suite has been shown safe under xdist. No checks first.
test-fast: $(STAMP)
	MEMTUI_TEST_LANE=fast $(BIN)/python -m pytest -q -n 2 $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run.py --quick $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
