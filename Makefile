# harnesslab: `make run` runs the default experiment, `make test` runs every test.
# Both create .venv and install the project (editable) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install services docker run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bedrock]'
	touch $(STAMP)

services:  ## what tests need from Debian: postgresql and bubblewrap, installed (as root) when missing
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v bwrap >/dev/null 2>&1 || missing="$$missing bubblewrap"; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "note: not root, cannot install$$missing: their tests skip (unless REQUIRE_POSTGRES=1)"; fi

docker: $(STAMP)  ## a Docker engine (docker.io, started here) and the sandbox image, built offline
	@$(BIN)/harnesslab docker setup || { [ "$$REQUIRE_DOCKER" != 1 ] && echo "note: Docker tests skip"; }

run: $(STAMP)  ## the default experiment; extra Hydra overrides: make run ARGS="store=memory"
	$(BIN)/harnesslab run $(ARGS)

test: $(STAMP) services docker  ## lint, then every test; extra pytest arguments: make test PYTEST_ARGS="-k store"
	$(BIN)/ruff check processes stores sandboxes harnesses managed experiments tests examples
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP) services docker  ## benchmarks: side-by-side medians, p95 and ratios
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python -m experiments.bench $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .hypothesis *.egg-info
