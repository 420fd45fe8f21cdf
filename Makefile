# SPIRA Platform: the two commands are `make demo` and `make test`.
# Both create or refresh the virtualenv and install what they need (Debian packages too, as root).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the containers, the registry and the schema checks need (prometheus: promtool;
# prometheus-alertmanager: amtool, which checks the clusters' Alertmanager configuration).
DEB_PACKAGES := podman runc debootstrap docker-registry git prometheus prometheus-alertmanager
PYTEST_ARGS ?=

# Areas add their own install steps and prerequisites here (mk/<area>.mk).
TEST_DEPS :=
DEMO_DEPS :=
-include $(wildcard mk/*.mk)

.PHONY: help venv sysdeps test test-unit test-integration test-e2e demo lint fmt bench clean

help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# requirements.lock pins every transitive version (pip, setuptools and wheel too) with the sha256 of its
	# files (regenerate: .venv/bin/python -m ci.lock); torch==2.13.0+cpu resolves to the local CPU build.
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	# Hash-checking mode refuses an editable requirement (no single file to hash): the project alone, no
	# dependencies, built with the hashed setuptools; pip check fails if pyproject needs what the lock lacks.
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	@touch $@

venv: $(STAMP)  ## create or refresh the virtualenv

sysdeps:  ## install the Debian packages the suite needs (root), or name them
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages: $$missing"; \
	    echo "run: sudo apt-get install -y $$missing   (then re-run make)"; exit 1; \
	  fi; \
	fi

test: sysdeps venv lint $(TEST_DEPS)  ## lint, then the whole suite (unit, integration, e2e); CI=true turns skips into failures
	$(BIN)/python -m ci.run_pytest $(PYTEST_ARGS)

test-unit: venv  ## unit tests only (no network, no services)
	$(BIN)/python -m ci.run_pytest tests/unit $(PYTEST_ARGS)

test-integration: sysdeps venv $(TEST_DEPS)  ## integration tests against a real local stack
	$(BIN)/python -m ci.run_pytest tests/integration $(PYTEST_ARGS)

test-e2e: sysdeps venv $(TEST_DEPS)  ## whole flows
	$(BIN)/python -m ci.run_pytest tests/e2e $(PYTEST_ARGS)

demo: sysdeps venv $(DEMO_DEPS)  ## the main job: data -> pipeline -> Bento -> image -> gate -> promotion, on local services
	$(BIN)/spira demo $(DEMO_ARGS)

lint: venv  ## ruff, and the layer contracts (import-linter, [tool.importlinter] in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv  ## benchmarks (numbers for the README), not part of the suite
	$(BIN)/python -m benchmarks.run

clean:  ## remove the virtualenv and local state (stops the local stack first)
	-$(BIN)/spira stack down
	rm -rf $(VENV) .spira .pytest_cache
