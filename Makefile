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

# MathJax, so the browser test can check that math renders on this offline machine (optional: needs npm).
MATHJAX := _build/vendor/mathjax
$(MATHJAX):
	@mkdir -p _build/vendor && cd _build/vendor && (npm pack --silent mathjax@3.2.2 >/dev/null 2>&1 \
	  && mkdir -p mathjax && tar -xzf mathjax-3.2.2.tgz -C mathjax --strip-components=1 && rm mathjax-3.2.2.tgz) \
	  || echo "npm could not fetch MathJax: the browser test will check math markup only"

test: $(STAMP) | $(MATHJAX)
	NNSTUDIES_SCALE=smoke NNSTUDIES_STATIC=1 NNSTUDIES_CACHE=$(CURDIR)/_build/test-cache $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

clean:
	rm -rf _build
