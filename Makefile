# Two commands do all set-up on a fresh machine with Python 3.11:
#   make quickstart   install into .venv, then train, predict and evaluate on sample_data/
#   make quickstart-zh  the same in Chinese: README.md's 中文 quick start on sample_data/reviews_zh.csv
#   make test         install into .venv (with the test, serve and beam extras), then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= quickstart-out

.PHONY: install quickstart quickstart-zh test pretrained-en clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,serve,beam]'
	touch $@

install: $(BIN)/.installed

quickstart: install
	rm -rf $(OUT)/news-model
	$(BIN)/albert finetune sample_data/news.csv -o $(OUT)/news-model
	$(BIN)/albert predict $(OUT)/news-model sample_data/headlines.txt
	$(BIN)/albert evaluate $(OUT)/news-model sample_data/news_test.csv

# README.md's 中文 section, line for line, with the outputs under $(OUT): a vocabulary, then a model that uses it
# (tests/test_quickstart_zh.py runs the README's lines themselves).
quickstart-zh: install
	rm -rf $(OUT)/zh.model $(OUT)/zh.vocab $(OUT)/zh.json $(OUT)/情感模型
	mkdir -p $(OUT)
	$(BIN)/albert tokenize train sample_data/reviews_zh.csv -o $(OUT)/zh --vocab-size 8000
	$(BIN)/albert finetune sample_data/reviews_zh.csv --tokenizer $(OUT)/zh.model -o $(OUT)/情感模型
	echo "这家酒店的服务很好" | $(BIN)/albert predict $(OUT)/情感模型
	$(BIN)/albert evaluate $(OUT)/情感模型 sample_data/reviews_zh_test.csv

# pytest exits 5 when it collects no test: that fails here, as it should. The test extra brings a CPU JAX, so the
# KERAS_BACKEND=jax tests run rather than skip: fail early if it did not install.
test: install
	$(BIN)/python -c "import jax"
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# A CPU-sized pretrained English base (issue #8): an 8,000-piece vocabulary and the `small` config (4 layers x 312,
# embedding 128), n-gram MLM + SOP with LAMB 3e-3 on ../shared/data/en_pretrain (1e-2 collapsed the attention),
# 8,000 steps of batch 32 x 128 tokens in bfloat16 mixed precision (about 65 minutes at the speed measured on two
# idle cores), at most PRETRAIN_TIME of wall clock per run.
# Stopped by Ctrl-C or by the time budget? Run it again: it resumes at its last checkpoint.
# Then: albert finetune TRAIN.csv --init $(PRETRAINED) --lr 5e-4 -o MODEL
EN_PRETRAIN   ?= ../shared/data/en_pretrain/train.csv
PRETRAINED    ?= models/pretrained-en
PRETRAIN_TIME ?= 3h
PRETRAIN_ARGS ?= --config small --max-seq-length 128 --batch-size 32 --learning-rate 3e-3 --warmup-steps 300 \
                 --decay-steps 8000 --max-steps 8000 --save-every 250 --precision bf16
pretrained-en: install
	mkdir -p $(dir $(PRETRAINED))
	test -f $(PRETRAINED)-spm.model || $(BIN)/albert tokenize train $(EN_PRETRAIN) -o $(PRETRAINED)-spm \
	    --vocab-size 8000 --input-sentence-size 200000
	if [ -d $(PRETRAINED).partial ] || [ -d $(PRETRAINED)/checkpoints ]; then resume=--resume; else resume=; fi; \
	$(BIN)/albert pretrain $(EN_PRETRAIN) --doc-column doc --tokenizer $(PRETRAINED)-spm.model -o $(PRETRAINED) \
	    $(PRETRAIN_ARGS) --max-time $(PRETRAIN_TIME) $$resume

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
