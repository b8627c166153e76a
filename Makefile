# gradlab: one command sets up a local virtual environment and runs the tests.
#   make test        create .venv (first time), install gradlab with its test extras, run the suite
#   make bench       the asv benchmark suite, one quick pass against the current checkout
#   make bench-smoke check that every asv benchmark imports and runs once, at one tiny parametrisation
#   make compare     the peer comparison (SPEC §9), written to reports/performance/
#   make reports     the main job: run every study at default size, writing reports/ (gradlab study --all)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ASV    := $(VENV)/bin/asv
# The one parametrisation bench-smoke runs of each asv benchmark.
SMOKE  := --bench "\('rnn_tanh', 'cpu', 'float64', '1000x1x32'\)" --bench "\('float64'\)"

.PHONY: reports test venv bench-venv bench bench-smoke compare clean

test: venv
	$(PY) -m pytest

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test,compare]'
	touch $@

bench-venv: $(VENV)/.bench-installed

$(VENV)/.bench-installed: $(VENV)/.installed
	$(PY) -m pip install -e '.[bench]'
	touch $@

bench: bench-venv
	$(ASV) machine --yes
	$(ASV) run --python=same --quick --show-stderr --set-commit-hash $$(git rev-parse HEAD)

bench-smoke: bench-venv
	$(ASV) machine --yes
	$(ASV) check --python=same
	$(ASV) run --python=same --quick --show-stderr --dry-run $(SMOKE)

reports: venv
	$(VENV)/bin/gradlab study --all

compare: venv
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/compare.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
