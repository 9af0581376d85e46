# hyperlocal: two commands do all the set-up.
#   make serve   create .venv, install, run the server on http://127.0.0.1:8000 (embedded default)
#   make test    create .venv if needed, install, run the whole test suite

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install serve test lint bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/hyperlocal serve

# pytest exits 5 when it collected no test: that is a failure here, never a pass.
test: $(STAMP)
	$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: no tests were collected" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src

# The long reliability runs: the slow tests at ten times the numbers.
soak: $(STAMP)
	HYPERLOCAL_SOAK_SCALE=10 $(BIN)/python -m pytest -m slow tests/reliability tests/api/test_credits.py

bench: $(STAMP)
	$(BIN)/python bench/images.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
