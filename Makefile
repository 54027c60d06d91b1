# fleet: developer and CI entry points. Everything a fresh machine needs is installed from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export FLEET_TOOLCHAIN_DIR ?= $(HOME)/.cache/fleet/toolchain
PYTEST_WORKERS ?= 2

.PHONY: all venv toolchain test test-unit test-integration test-e2e check drill bench clean doctor fresh-check

all: check test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,aws,gcp,azure]'
	touch $@

venv: $(VENV)/.installed

## Build the local toolchain from Go modules into $(FLEET_TOOLCHAIN_DIR) (idempotent; seconds when warm).
toolchain:
	@command -v go >/dev/null || { echo "✗ go not found: install Go >= 1.26 (apt-get install golang is too old)"; exit 2; }
	@command -v git >/dev/null || { apt-get update -qq && apt-get install -y -qq git; }
	tools/build.sh

doctor: venv toolchain
	$(VENV)/bin/fleet doctor

## All test tiers: unit (no binaries), integration (real local clusters), e2e (real Pulumi engine).
test: venv toolchain
	$(PY) -m pytest tests/unit -q -p no:cacheprovider
	$(PY) -m pytest tests/integration tests/e2e -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile

test-unit: venv
	$(PY) -m pytest tests/unit -q

test-integration: venv toolchain
	$(PY) -m pytest tests/integration -q -n $(PYTEST_WORKERS) --dist loadfile

test-e2e: venv toolchain
	$(PY) -m pytest tests/e2e -q -n $(PYTEST_WORKERS) --dist loadfile

check: venv
	$(VENV)/bin/ruff check fleet bootstrap rollout drill clusters tests bench
	$(VENV)/bin/mypy fleet bootstrap rollout drill clusters
	$(VENV)/bin/lint-imports

## The main job: a local DR drill on the embedded default (local clusters, real Pulumi engine).
drill: venv toolchain
	$(VENV)/bin/python -m drill

## The fresh-machine check: a clean clone runs `make drill` and `make test` with empty Go, toolchain
## and venv caches. COLD="etcd flux" builds only those families from nothing (default: all, ~26 min).
COLD ?= all
fresh-check:
	tools/fresh-check.sh --cold "$(COLD)"

bench: venv toolchain
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
