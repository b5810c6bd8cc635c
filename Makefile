# negolens — the two commands a fresh machine needs: `make study` and `make test`.
# Both create/update a local virtual environment (.venv) from the tested lock first.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.negolens-installed
PYTEST_ARGS ?=

.PHONY: install browser study test lock clean

install: $(STAMP)

# torch is installed first, pinned, so that pip takes the CPU build where one is on disk
# (and never pulls a multi-GB CUDA build to satisfy a range).
$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "pip>=24" "setuptools>=77" wheel
	$(PY) -m pip install -q --disable-pip-version-check "$$(grep -E '^torch==' requirements.lock)"
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Headless Chromium (Debian package) renders the study's HTML report in the report test.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

study: install
	$(VENV)/bin/negolens models fetch smollm2-135m-instruct
	$(VENV)/bin/negolens study

test: install browser
	@$(PY) -m pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests (exit 5): nothing was checked" >&2; exit 1; fi; \
	exit $$rc

# Re-record the lock from the current venv (after changing dependencies in pyproject.toml).
lock:
	$(PY) -m pip freeze --exclude-editable --disable-pip-version-check \
	  | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/' > requirements.lock

clean:
	rm -rf $(VENV) build dist *.egg-info
