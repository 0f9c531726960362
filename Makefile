# Two commands do everything on a fresh clone:
#   make book   executes the chapters that changed (cpu scale), stores their outputs, builds the HTML book
#   make test   lint and types, unit tests, every chapter at smoke scale (papermill and nbval) and at paper
#               in a dry run, the book build, a browser test, the Colab route (tests/test_colab.py: the first
#               cell installs from a git+file:// copy into a fresh environment with torch), actionlint and
#               zizmor on .github/workflows
# And for maintainers:
#   make results SCALE=full [CHAPTER=00]   runs chapters at full (or paper) and stores results/<chapter>/<scale>.json;
#                                          each chapter's sweeps run on every core (EXECUTOR=slurm: as SLURM job
#                                          arrays through submitit; WORKERS=n: n processes)
#   make verify [CHAPTER=00]               after a refactor: certify stored results whose numbers are unchanged
#                                          (tools/book.py verify), or say which chapters must be re-run
#   make student                           the student edition: no solutions, an empty cell under each coding
#                                          exercise, in _build/student
#   make pdf                               the book as one PDF, in _build/pdf (headless Chromium, no LaTeX)
# Both create and reuse a virtual environment in .venv. Torch is installed only when none imports
# (TORCH_SPEC, default the version the book is tested with); an installed torch is never replaced.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# Where that torch comes from when it must be installed: PyPI by default (its Linux wheel carries CUDA's
# libraries); e.g. TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU-only build.
TORCH_INDEX ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nnstudies-installed

.PHONY: book test lint results verify student pdf env sync execute html clean

# Fashion-MNIST, the full scale's real data (nnstudies.data): Debian's package where make runs as root with apt.
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
APT_FASHION := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist

env: $(STAMP)
	@test -f $(FASHION_MNIST) || if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  ($(APT_FASHION) || (apt-get update -qq && $(APT_FASHION))) >/dev/null 2>&1 \
	  || echo "could not install dataset-fashion-mnist: Fashion-MNIST downloads on first use"; \
	else echo "Fashion-MNIST: sudo apt-get install dataset-fashion-mnist, or set NNSTUDIES_DATA, or it downloads on first use"; fi

# Test-only peer library (checks our KFAC factors). Installed without its dependencies: BackPACK asks for
# torchvision, which would replace the installed torch; curvlinops does not need torchvision.
PEERS := curvlinops-for-pytorch==3.0.1 backpack-for-pytorch==1.7.1 unfoldNd==0.2.3 einconv==0.1.0 \
	linear_operator==0.6.1 opt-einsum==3.4.0 einops==0.8.2

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || \
	  $(PY) -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	@# pin the torch that is there, so that no dependency can replace it
	@$(PY) -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/torch-constraint.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(VENV)/torch-constraint.txt -e ".[book,test]"
	$(PY) -m pip install --quiet -c $(VENV)/torch-constraint.txt --no-deps $(PEERS)
	@touch $@

sync: $(STAMP)
	$(PY) tools/book.py sync

execute: sync
	$(PY) tools/book.py execute

html: $(STAMP)
	$(PY) tools/book.py build

book: execute html

# MathJax is part of the book: `tools/book.py build` (make html, and the book test of make test) fetches
# mathjax@3.2.2 once with npm into _build/vendor, checks the registry's integrity hash, and copies it into
# the book's _static. Nothing here fetches it.

lint: $(STAMP)
	$(VENV)/bin/ruff check lib tools tests book/_ext setup.py
	$(VENV)/bin/ruff format --check lib tools
	$(VENV)/bin/mypy lib tools

SCALE ?= full
CHAPTER ?=
EXECUTOR ?= local
WORKERS ?=
results: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE NNSTUDIES_EXECUTOR=$(EXECUTOR) $(if $(WORKERS),NNSTUDIES_WORKERS=$(WORKERS)) \
	  $(PY) tools/book.py results --scale $(SCALE) $(CHAPTER)

verify: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) tools/book.py verify $(CHAPTER)

student: $(STAMP)
	$(PY) tools/book.py student

# The book as one PDF, _build/pdf/nnstudies.pdf: the single-page HTML book printed by headless Chromium
# (Debian's chromium; no LaTeX).
pdf: $(STAMP)
	$(PY) tools/book.py pdf

# The tests run in parallel, a test file (or notebook) per worker at a time (pytest-xdist --dist loadfile),
# one torch thread each, so that two workers share two cores without OpenMP's busy-waiting; the chapters'
# sweeps run inside each worker (NNSTUDIES_WORKERS=1; tests/test_runs.py tests the process pool and
# submitit). MNIST-1D is made before they start, so that no two workers write it at once.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -gt 4 ] && n=4; echo $$n)
test: lint
	$(PY) -c "from nnstudies.data import load_dataset; load_dataset('mnist1d')"
	OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE NNSTUDIES_SCALE=smoke NNSTUDIES_STATIC=1 NNSTUDIES_WORKERS=1 \
	  NNSTUDIES_CACHE=$(CURDIR)/_build/test-cache $(PY) -m pytest tests notebooks --nbval-lax \
	  --nbval-current-env -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf _build
