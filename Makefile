# Two commands on a fresh machine: `make demo` (set up + run the main job), `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.oasl-installed
EXTRAS ?= dev,optuna,corpus,ray,hf,docs
# CPU build of torch pinned for this set-up only; pyproject keeps torch>=2.4 so GPU users keep CUDA builds.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test bench lint clean system-deps

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

# Chromium renders the HTML report in the report test; installed when apt-get is usable, else that test skips.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1) \
	  || echo "chromium not installed: the report rendering test will skip"; }

demo: setup
	$(VENV)/bin/oasl demo

test: setup system-deps
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: setup
	$(PY) benchmarks/run_all.py

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) oasl-demo .pytest_cache
