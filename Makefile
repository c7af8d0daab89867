# sofia-qa: `make run` installs, ingests the corpus and opens the app; `make test` runs the test suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml scripts/llama_wheel.sh | sha1sum | cut -c1-12)

.PHONY: install run ingest warm test test-fast browser eval bench clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/llama_wheel.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first and pinned: the CPU build on local disk (an unpinned torch pulls a 5 GB CUDA build)
	$(BIN)/pip install torch==2.13.0
	# llama-cpp-python builds from source once (about 6 minutes), for this CPU without AMX; the wheel is kept
	scripts/llama_wheel.sh $(BIN)/pip
	$(BIN)/pip install -e '.[model,test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

ingest: install
	$(BIN)/sofia-qa ingest

# once, optional: the model reads every chunk as a first passage and its state is saved (about 4 minutes
# here for the corpus); answers whose best passage is a saved chunk start to write about 1.5-2.5 s sooner
warm: ingest
	$(BIN)/sofia-qa warm

run: ingest
	$(BIN)/python app.py

browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-dejavu-core)

test: install browser
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not browser" -x

eval: ingest
	$(BIN)/sofia-qa eval

bench: install
	$(BIN)/python benchmarks/bench_ingest.py

clean:
	rm -rf .sofia-qa .pytest_cache
