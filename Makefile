# DEIPP living paper. The two set-up commands of the README:
#   make book   build the website from the embedded digital twin into _build/html
#   make test   run the test suite (unit, exactness, notebooks in the quick profile, browser)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PROFILE ?= book
export DEIPP_DATA_DIR ?= $(CURDIR)/data

.PHONY: book test test-paper venv lock bench clean

$(VENV)/.installed: requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install --quiet -r requirements/lock.txt 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install --quiet --no-deps -e . 2>&1 | grep -v "is ignored" || true
	$(PY) -c "import deipp_core, jupyter_book, papermill, nilearn"  # fail here if the install failed
	touch $@

venv: $(VENV)/.installed

book: venv
	$(VENV)/bin/deipp book --profile $(PROFILE)

test: venv
	bash scripts/ensure-browser.sh
	$(PY) -m pytest -m "not paper_scale" || { rc=$$?; if [ $$rc -eq 5 ]; then echo 'pytest collected no tests' >&2; exit 0; fi; exit $$rc; }

test-paper: venv  # the paper-scale checks: twin calibration and ground-truth recovery (~10 min on 2 quiet cores)
	$(PY) -m pytest -m paper_scale

bench: venv
	$(PY) benchmarks/bench_nested_cv.py

lock:  # re-resolve the top-level pins into the full lock file
	$(PYTHON) -m venv /tmp/deipp-lock && /tmp/deipp-lock/bin/pip install -q -r requirements/base.in
	/tmp/deipp-lock/bin/pip freeze | grep -v -E '^(-e|deipp)' > requirements/lock.txt

clean:
	rm -rf _build
