# Every target sets up .venv itself (torch pinned through constraints.txt to the local CPU wheel).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: demo test bench check-wheel clean

$(STAMP): pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m snnir.demo

test: $(STAMP)
	$(PY) -m pytest -q -n $(PYTEST_WORKERS)

bench: $(STAMP)
	$(PY) -m benchmarks

# Build a wheel, install it into a fresh venv without extras, and import the core and every backend
# package that exists (their optional dependencies may be missing; the import of the package itself must work).
check-wheel: $(STAMP)
	rm -rf build dist /tmp/snnir-wheel-venv
	$(PY) -m build --wheel --outdir dist . > /dev/null
	$(PYTHON) -m venv /tmp/snnir-wheel-venv
	/tmp/snnir-wheel-venv/bin/pip install --quiet dist/*.whl
	cd /tmp && /tmp/snnir-wheel-venv/bin/python $(CURDIR)/.ci/check_wheel.py $(CURDIR)

clean:
	rm -rf $(VENV) build dist .pytest_cache
