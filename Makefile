# graphc — developer tasks.  `make test` on a fresh clone sets everything up.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
VPY    := $(VENV)/bin/python
# Each target installs what it runs, once per change of pyproject.toml: a stamp file each.
DEMO_EXTRAS := plots,examples
TEST_EXTRAS := test,plots,examples
DEMO_STAMP  := $(VENV)/.installed-demo
TEST_STAMP  := $(VENV)/.installed-test
CHROMIUM    := /usr/bin/chromium
PYTEST_ARGS ?=

# Root needs no sudo; anyone else uses it when it exists.
SUDO := $(shell if [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)
APT  := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: help venv dot chromium demo test bench images clean

help:
	@echo "make test   run the test suite (sets up $(VENV), graphviz and chromium first)"
	@echo "make demo   run 'graphc demo'"
	@echo "make bench  run the benchmarks"
	@echo "make images draw the pictures of README.md's \"See it\" into docs/images/"
	@echo "make clean  remove $(VENV), build artefacts and out/"

# --- internal: the virtualenv, and graphc installed in it --------------------------------
# `make demo` installs graphc[$(DEMO_EXTRAS)], `make test` graphc[$(TEST_EXTRAS)] (a superset, so
# it stamps both); each again only when pyproject.toml changes.
venv: $(TEST_STAMP)

$(VPY):
	@echo "creating $(VENV) with $(PYTHON)"; \
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
	fi

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

$(DEMO_STAMP): pyproject.toml | $(VPY)
	$(call install,-e '.[$(DEMO_EXTRAS)]')
	touch $@

$(TEST_STAMP): pyproject.toml | $(VPY)
	$(call install,-e '.[$(TEST_EXTRAS)]')
	touch $@ $(DEMO_STAMP)

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

# --- internal: Debian's chromium, the browser tests/test_report.py drives with Playwright ------
# Playwright's own browser download is not used. Without apt-get (or root) the browser test is
# skipped, with this reason, and the rest of the suite runs.
chromium:
	@if [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "note: no $(CHROMIUM) and no apt-get: the report's browser test will be skipped" >&2; exit 0; \
	fi; \
	if [ "$$(id -u)" -ne 0 ] && [ -z "$(SUDO)" ]; then \
	  echo "note: no $(CHROMIUM); run \`apt-get install chromium\` as root, or the report's browser test is skipped" >&2; \
	  exit 0; \
	fi; \
	echo "installing chromium with apt-get"; \
	$(APT) update; \
	$(APT) install -y chromium || echo "note: apt-get could not install chromium: the report's browser test will be skipped" >&2

# --- public targets -------------------------------------------------------------------
demo: $(DEMO_STAMP) dot
	$(VENV)/bin/graphc demo

# Tests go to the two workers a file at a time (--dist loadfile), so a worker compiles a file's
# shared programs, module fixtures and JAX's XLA programs once, not each worker for its share;
# files go out in the order of tests/conftest.py's RUN_FIRST (--no-loadscope-reorder: xdist
# would otherwise send the files with the most tests first), those with the longest tests first.
# Python may write bytecode here even where the environment says not to (PYTHONDONTWRITEBYTECODE):
# the suite starts dozens of processes (notebook kernels, CLI runs, dask workers) that import numpy,
# scipy, jax and torch, and each compiled them from source again, about a minute in all.
test: $(TEST_STAMP) dot chromium
	PYTHONDONTWRITEBYTECODE= $(VPY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

bench: venv
	@if [ -f benchmarks/run_all.py ]; then \
	  $(VPY) benchmarks/run_all.py; \
	else \
	  echo "no benchmarks yet (benchmarks/run_all.py)"; \
	fi

images: venv dot chromium
	$(VPY) docs/make_images.py

clean:
	rm -rf $(VENV) build dist out *.egg-info .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
