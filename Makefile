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

# llama-cpp-python (the default chat model's engine) compiles from source, about 4 min. Its
# default build is for the building CPU (-march=native), and on CPUs with AMX that build
# crashes: GCC 12 drops the stores that fill ggml's AMX tile configuration, so every prompt of
# more than one token faults (llama.cpp issue #20824). So it is built for x86-64-v3 (AVX2,
# FMA, F16C): the same wheel runs on any CI machine. pip keys its wheel cache on the source
# archive, not on these flags, so this wheel is cached in a pip cache of its own, named after
# the flags: a wheel built any other way (a plain `pip install`) is never picked up.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_SSE42=ON
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
LLAMA_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/hyperlocal/pip-llama-$(shell \
	printf '%s' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-12)
LLAMA := llama-cpp-python>=0.3

.PHONY: install serve test lint bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS='$(LLAMA_CMAKE_ARGS)' $(BIN)/python -m pip install --quiet \
		--cache-dir '$(LLAMA_CACHE)' '$(LLAMA)'
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
