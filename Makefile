# Every target sets up .venv itself (torch pinned through constraints.txt to the local CPU wheel).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: demo test bench check-wheel device-check clean

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

# On a lent GPU machine (docs/torch.md, "CUDA"): the torch backend's device tests and its training benchmark
# on $(DEVICE). That machine brings its own CUDA build of torch and has no network, so no .venv: the package
# runs from a copy laid out as installed, with that machine's python3 (3.11 or later for -P, which keeps the
# checkout's own snnir/, lacking the backends, off sys.path). The benchmark needs snnTorch (carry its wheel
# there). DEVICE=cpu dry-runs all of it here.
DEVICE ?= cuda
DEVICE_OUT ?= benchmarks/results
DEVICE_SITE ?= /tmp/snnir-device-site
DEVICE_PATH = $(DEVICE_SITE)$${PYTHONPATH:+:$$PYTHONPATH}
device-check:
	rm -rf $(DEVICE_SITE) && mkdir -p $(DEVICE_SITE)
	cp -r snnir $(DEVICE_SITE)/ && cp -r backends $(DEVICE_SITE)/snnir/backends && cp -r frontends $(DEVICE_SITE)/snnir/frontends
	SNNIR_TEST_DEVICE=$(DEVICE) PYTHONPATH=$(DEVICE_PATH) $(PYTHON) -P -m pytest -q -p no:cacheprovider \
		tests/backends/test_torch_device.py tests/backends/test_torch_model.py -k "$(firstword $(subst :, ,$(DEVICE))) or cuda"
	PYTHONPATH=$(DEVICE_PATH) $(PYTHON) -P -c "import snntorch" || (echo "snnTorch is missing: carry its wheel (docs/torch.md, CUDA)"; exit 1)
	PYTHONPATH=$(DEVICE_SITE):$(CURDIR) $(PYTHON) -P -m benchmarks.bench_torch_train --device $(DEVICE) --workloads a b \
		--repeats 5 --out $(DEVICE_OUT)/torch_train_$(subst :,_,$(DEVICE)).json

clean:
	rm -rf $(VENV) build dist .pytest_cache
