# Two commands do all set-up on a fresh machine with Python 3.11:
#   make quickstart   install into .venv, then train, predict and evaluate on sample_data/
#   make test         install into .venv (with the test extra), then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= quickstart-out

.PHONY: install quickstart test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

quickstart: install
	rm -rf $(OUT)/news-model
	$(BIN)/albert finetune sample_data/news.csv -o $(OUT)/news-model
	$(BIN)/albert predict $(OUT)/news-model sample_data/headlines.txt
	$(BIN)/albert evaluate $(OUT)/news-model sample_data/news_test.csv

# pytest exits 5 when it collects no test: that fails here, as it should.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
