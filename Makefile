# Two entry points (README): `make book` sets everything up, executes every chapter at book scale
# through papermill (toysup/book/reproduce.py: unchanged chapters are reused) and builds the book from those
# executions; `make test` sets everything up and runs the whole test suite (what CI runs).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: book test mutants browser clean

# matplotlib's font cache and IPython's profile go to _build/, not $HOME (toysup/paths.py, tool_environment).
export MPLCONFIGDIR ?= $(CURDIR)/_build/tool-state/matplotlib
export IPYTHONDIR ?= $(CURDIR)/_build/tool-state/ipython

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -qq --upgrade pip
	$(BIN)/python -m pip install -qq -r requirements.txt
	touch $@

# Two chapters at once, one thread each, where there are two cores or more: on 2 cores that trains
# 1.58x as fast as one chapter at a time with two threads (README, "the book's time").
JOBS ?= $(shell nproc 2>/dev/null | awk '{print ($$1 >= 2) ? 2 : 1}')
book: $(STAMP)
	mkdir -p _build/tool-state
	$(BIN)/python -m toysup.book.reproduce --jobs $(JOBS) $(ARGS)

# Stage 1: unit tests and every chapter in fast mode through papermill (tests/test_notebooks.py), then
# the CI subset of the mutation run (each mutant must fail an evidence or regression check).
# Stage 2: nbval re-executes each fast-mode chapter cell by cell (its scorecard records go to a folder
# of their own), while the book is built from the stage-1 executions and every page is loaded in
# headless Chromium (tests/book). One thread per xdist worker: two workers on two cores would
# oversubscribe. Temporary test files stay under _build/pytest/.
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2
test: $(STAMP) browser
	mkdir -p _build/pytest _build/tool-state
	$(PYTEST) --basetemp=$(CURDIR)/_build/pytest/units --ignore=tests/book tests
	OMP_NUM_THREADS=1 $(BIN)/python -m toysup.book.mutants --ci
	TOYSUP_RECORDS=$(CURDIR)/_build/fast/nbval-records $(PYTEST) --basetemp=$(CURDIR)/_build/pytest/book \
		--dist loadfile --nbval-lax --nbval-current-env --nbval-cell-timeout=300 \
		_build/fast/notebooks tests/book

# The mutation run (toysup/book/mutants.py): every deliberate mistake, each on a copy of the repository
# under _build/mutants/, its owning chapter in fast mode; rewrites book/mutants_table.md.
mutants: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m toysup.book.mutants

# Debian's Chromium and ChromeDriver for the browser test (tests/book), installed when missing.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver; }

clean:
	rm -rf _build
