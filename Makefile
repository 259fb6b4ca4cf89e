# Every target bootstraps .venv from the pins in constraints.txt on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
export DAGSTER_HOME := $(CURDIR)/dagster_home

.PHONY: install demo test ui lint bench bench-partitioned clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/invoice-pipeline demo

test: install
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

# The pandas and datacompy baselines live in their own venv: datacompy 1.1 needs pandas<3.1 and
# polars<1.45, which would downgrade the product's pandas and polars.
BASELINES := bench/.venv-baselines
$(BASELINES)/.installed-stamp: bench/requirements-baselines.txt
	$(PYTHON) -m venv $(BASELINES)
	$(BASELINES)/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements-baselines.txt
	touch $@

# BENCH_SIZES="1000000 5000000 10000000" by default; generated data is cached in bench/cache/.
bench: install $(BASELINES)/.installed-stamp
	$(BIN)/python bench/run.py

# The per-entity fan-out against one run (docs/scaling.md); PARTITION_INVOICES=1000000 by default.
PARTITION_INVOICES ?= 1000000
bench-partitioned: install
	$(BIN)/invoice-pipeline generate --out bench/cache/partitioned-gen-$(PARTITION_INVOICES) --invoices $(PARTITION_INVOICES) --seed 1
	$(BIN)/python bench/partitioned.py bench/cache/partitioned-gen-$(PARTITION_INVOICES) bench/cache/partitioned-work \
		--json bench/cache/partitioned-$(PARTITION_INVOICES).json

ui: install
	$(BIN)/python scripts/dagster_dev.py -p 3000

lint: install
	$(BIN)/ruff check invoice_pipeline tests
	$(BIN)/dagster definitions validate -w workspace.yaml

clean:
	rm -rf $(VENV) $(BASELINES) .pytest_cache .ruff_cache
