# hyperlocal: two commands do all the set-up.
#   make serve   create .venv, install, run the server on http://127.0.0.1:8000 (embedded default)
#   make test    create .venv if needed, install, run the whole test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TEST_STAMP := $(VENV)/.test-installed-stamp
# The tests run the local-weights adapters on tiny CPU models: take the CPU build of torch
# (a plain `torch` requirement would fetch several GB of CUDA wheels).
TORCH_CPU ?= torch==2.13.0

.PHONY: install serve test lint bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	./scripts/system-deps
	$(BIN)/python -m pip install --quiet '$(TORCH_CPU)'
	$(BIN)/python -m pip install --quiet -e '.[dev,gpu]' '$(TORCH_CPU)'
	touch $(TEST_STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/hyperlocal serve

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: $(TEST_STAMP)
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests were collected" >&2; exit 1; fi; exit $$rc

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

# The long reliability runs: the slow tests at ten times the numbers.
soak: $(TEST_STAMP)
	HYPERLOCAL_SOAK_SCALE=10 $(BIN)/python -m pytest -m slow tests/reliability tests/api/test_credits.py

bench: $(TEST_STAMP)
	./scripts/system-deps wrk
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
