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

# Unit tests and every chapter in fast mode through papermill, then the book built from those runs
# (tests/test_notebooks.py); then nbval re-executes each fast-mode chapter cell by cell.
# One thread per xdist worker: two workers on two cores would otherwise oversubscribe.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile -p no:cacheprovider \
		--nbval-lax --nbval-current-env --nbval-cell-timeout=300 _build/fast/notebooks

clean:
	rm -rf _build
