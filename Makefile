# Two commands do everything on a fresh clone:
#   make book   executes the chapters that changed (cpu scale), stores their outputs, builds the HTML book
#   make test   unit tests, every chapter at smoke scale (papermill and nbval), the book build, a browser test
# Both create and reuse a virtual environment in .venv. Torch is installed only when none imports
# (TORCH_SPEC, default the version the book is tested with); an installed torch is never replaced.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nnstudies-installed

.PHONY: book test env sync execute html clean

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[book,test]"
	@touch $@

sync: $(STAMP)
	$(PY) tools/book.py sync

execute: sync
	$(PY) tools/book.py execute

html: $(STAMP)
	$(PY) tools/book.py build

book: execute html

test: $(STAMP)
	NNSTUDIES_SCALE=smoke NNSTUDIES_STATIC=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

clean:
	rm -rf _build
