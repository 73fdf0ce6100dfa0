# graphc — developer tasks.  `make test` on a fresh clone sets everything up.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
EXTRAS := test,plots,examples
PYTEST_ARGS ?=

# Root needs no sudo; anyone else uses it when it exists.
SUDO := $(shell if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)
APT  := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: help venv dot demo test bench clean

help:
	@echo "make test   run the test suite (sets up $(VENV) and graphviz first)"
	@echo "make demo   run 'graphc demo'"
	@echo "make bench  run the benchmarks"
	@echo "make clean  remove $(VENV), build artefacts and out/"

# --- internal: the virtualenv, reinstalled only when pyproject.toml changes -------------
# uv installs the same requirements as pip in a seventh of the time (about 10 s instead of 70 s
# for the test extras). It reads no pip configuration, so the machine's (a local wheel folder,
# extra indexes, a constraints file) is passed on; pip does the install when uv cannot.
pip_config = $(shell $(PYTHON) -m pip config list 2>/dev/null | sed -n "s/^global\.$(1)='\(.*\)'$$/\1/p")
UV_SOURCES = $(foreach d,$(call pip_config,find-links),--find-links $(d)) \
              $(foreach u,$(call pip_config,extra-index-url),--extra-index-url $(u)) \
              $(foreach c,$(call pip_config,constraint),--constraint $(c))
define install
	if $(VPY) -m pip install -q --disable-pip-version-check uv \
	   && $(VENV)/bin/uv pip install --python $(VPY) $(UV_SOURCES) $(1); then :; \
	else \
	  echo "uv failed; installing with pip"; \
	  $(VPY) -m pip install --no-compile $(1); \
	fi  # bytecode is compiled on first import: only what runs
endef

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x $(VPY) ]; then \
	  echo "creating $(VENV) with $(PYTHON)"; \
	  if ! $(PYTHON) -m venv $(VENV); then \
	    rm -rf $(VENV); \
	    if ! command -v apt-get >/dev/null 2>&1; then \
	      echo "'$(PYTHON) -m venv' failed; install your Python's venv module" >&2; exit 1; \
	    fi; \
	    echo "'$(PYTHON) -m venv' failed; installing the venv module with apt-get"; \
	    ver=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	    $(APT) update; \
	    $(APT) install -y python$$ver-venv || $(APT) install -y python3-venv; \
	    $(PYTHON) -m venv $(VENV); \
	  fi; \
	fi
	$(call install,-e '.[$(EXTRAS)]')
	touch $@

# --- internal: graphviz's `dot`, needed to render images --------------------------------
dot:
	@if command -v dot >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "graphviz's \`dot\` is needed for images; install it with your package manager, e.g. \`brew install graphviz\`" >&2; \
	  exit 1; \
	fi; \
	if [ "$$(id -u)" -ne 0 ] && [ -z "$(SUDO)" ]; then \
	  echo "graphviz's \`dot\` is needed for images; run \`apt-get install graphviz\` as root" >&2; \
	  exit 1; \
	fi; \
	echo "installing graphviz with apt-get"; \
	$(APT) update; \
	$(APT) install -y graphviz; \
	command -v dot >/dev/null 2>&1 || { echo "graphviz installed but \`dot\` is not on PATH" >&2; exit 1; }

# --- public targets -------------------------------------------------------------------
demo: venv dot
	$(VENV)/bin/graphc demo

# Tests go to the two workers a few at a time, the longest first (tests/conftest.py's RUN_FIRST):
# with xdist's default chunks of hundreds, one worker could be handed every long test.
test: venv dot
	$(VPY) -m pytest -q -n 2 --maxschedchunk 4 $(PYTEST_ARGS)

bench: venv
	@if [ -f benchmarks/run_all.py ]; then \
	  $(VPY) benchmarks/run_all.py; \
	else \
	  echo "no benchmarks yet (benchmarks/run_all.py)"; \
	fi

clean:
	rm -rf $(VENV) build dist out *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
