# harnesslab: `make run` runs the default experiment, `make test` runs every test.
# Both create .venv and install the project (editable) on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the default experiment; extra Hydra overrides: make run ARGS="store=memory"
	$(BIN)/harnesslab run $(ARGS)

test: $(STAMP)  ## every test; extra pytest arguments: make test PYTEST_ARGS="-k store"
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks: side-by-side medians, p95 and ratios
	$(BIN)/python -m experiments.bench $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .hypothesis *.egg-info
