# Two entry points (see README): `make report` and `make test`.
# Each creates or reuses .venv, installs archcount with the CPU torch wheel, and runs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS ?= -q -c constraints-cpu.txt
REPORT_DIR ?= out/report
RUNS_DIR ?= runs
EPOCHS ?= 25

.PHONY: install report report-quick test bench clean

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -e '.[test]'
	touch $@

install: $(VENV)/.installed

# The main job: the full comparison report, training whatever runs are missing.
report: $(VENV)/.installed
	$(VENV)/bin/archcount report --out $(REPORT_DIR) --runs $(RUNS_DIR) --train --epochs $(EPOCHS) --sweep --format md,pdf

# Analysis-only report (no training, no data needed).
report-quick: $(VENV)/.installed
	$(VENV)/bin/archcount report --out $(REPORT_DIR) --format md,pdf

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
