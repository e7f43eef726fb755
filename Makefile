# Two entry points (README): `make book` sets everything up and builds the book at book scale;
# `make test` sets everything up and runs the whole test suite (what CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test clean

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -r requirements.txt
	touch $@

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

# Stage 1: unit tests and every chapter in fast mode through papermill (tests/test_notebooks.py).
# Stage 2: nbval re-executes each fast-mode chapter cell by cell, while the book is built from those
# executions (tests/book). One thread per xdist worker: two workers on two cores would oversubscribe.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --ignore=tests/book tests
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile -p no:cacheprovider \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=300 _build/fast/notebooks tests/book

clean:
	rm -rf _build
