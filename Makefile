# bp-train: common runs. `make help` lists them.
#
# Everything runs inside a project virtual environment, .venv/, made with the interpreter found as
# $(PYTHON): a stock Debian/Ubuntu python3 refuses `pip install` outside one (PEP 668). Override with
# `make train PYTHON=python3.12`. After `make train`, run the CLI as .venv/bin/bp-train, or activate the
# environment first: `. .venv/bin/activate`.
PYTHON  ?= python3
comma   := ,
VENV    ?= .venv
BIN     := $(VENV)/bin
CONFIG  ?= configs/default.yaml
NAME    := $(basename $(notdir $(CONFIG)))
RUN     ?= runs/$(NAME)
# The local copy of MNIST that CI and the developers' machines have beside the checkout, used as the
# download mirror when present (no network needed); elsewhere the public mirrors are used.
SHARED  := $(abspath ../shared/data)
MIRROR  ?= $(if $(wildcard $(SHARED)/mnist/train-images-idx3-ubyte.gz),--mirror file://$(SHARED)/mnist/)
REPLICA ?= $(if $(wildcard $(SHARED)/kaggle-replica/train.csv.gz),$(SHARED)/kaggle-replica/train.csv.gz,$(TRAIN_CSV))
# The Kaggle files as downloaded (train.csv.gz) work as well as plain CSVs: use whichever is in data/
# (make kaggle refuses to guess when both are there).
DATA      ?= data
TRAIN_FOUND := $(wildcard $(DATA)/train.csv $(DATA)/train.csv.gz)
TEST_FOUND  := $(wildcard $(DATA)/test.csv $(DATA)/test.csv.gz)
TRAIN_CSV := $(firstword $(TRAIN_FOUND) $(DATA)/train.csv)
TEST_CSV  := $(firstword $(TEST_FOUND) $(DATA)/test.csv)

.PHONY: help install test check train predict evaluate data gradcheck compare-speed bench tune figures plot clean kaggle \
	compare-optimizers compare-init compare-batchnorm compare-dropout

help:
	@echo "make train          install into $(VENV)/, fetch MNIST unless data/train.csv(.gz) exists, train CONFIG=$(CONFIG)"
	@echo "                    into RUN=$(RUN), replacing the run there once the new one has an epoch to show"
	@echo "make test           install and run the whole test suite"
	@echo "make check          install, lint and format-check (ruff), and run a quick smoke subset of the tests (under a minute)"
	@echo "make predict        write submission.csv from $(RUN)/model.npz and $(TEST_CSV)"
	@echo "make kaggle         train an ensemble of $(KAGGLE_CONFIG) (seeds $(SEEDS), JOBS=$(JOBS) at a time) on the Kaggle train.csv in data/ into"
	@echo "                    $(ENSEMBLE), then write $(SUBMISSION) for data/test.csv with TTA; again: resumes, adds new SEEDS;"
	@echo "                    DEVICE=cuda trains on an NVIDIA GPU, EPOCHS=N each member N epochs"
	@echo "make evaluate       report on data/test.csv with data/test_labels.csv"
	@echo "make data           download MNIST and write data/train.csv, test.csv, test_labels.csv"
	@echo "make gradcheck      backprop against numerical gradients for CONFIG"
	@echo "make compare-speed  how much faster backprop is, for growing networks"
	@echo "make bench          training speed against this machine's matmul peak, idle and busy"
	@echo "make tune           search hyper-parameters around default.yaml (configs/tune-default.yaml, a few minutes)"
	@echo "make figures        re-measure the figures (docs/figures.md) and copy them into the docs pages"
	@echo "make plot           learning curves, confusion matrix, misclassified digits of $(RUN)"
	@echo "make compare-optimizers / compare-init / compare-batchnorm / compare-dropout"
	@echo "                    the textbook's chapter-6 experiments side by side, one PNG each in runs/compare-*/"
	@echo "make clean          remove runs/, caches, build files and $(VENV)/ (not data/)"

# --no-compile: Python compiles a module when it is first imported; compiling every installed package up
# front took 12 of the install's 36 s.
install: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "bp-train needs Python >= 3.11; '$(PYTHON)' is $$($(PYTHON) --version 2>&1). Try: make $(MAKECMDGOALS) PYTHON=python3.12" >&2; exit 2; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
		{ rm -rf $(VENV); echo "could not create $(VENV) with $(PYTHON); on Debian/Ubuntu: sudo apt install python3-venv" >&2; exit 2; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[dev,plot,tune]'
	@touch $@

# The suite in parallel workers (pytest-xdist), one per core, each with one BLAS thread (tests/conftest.py).
# The slowest tests come first and each worker takes the next test when it is free (--maxschedchunk 1):
# xdist's default hands each worker a run of consecutive tests, which put every slow one on one worker.
test: install
	$(BIN)/python -m pytest -q -n auto --maxschedchunk 1

check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -x tests/test_layers.py tests/test_conv.py tests/test_config.py tests/test_cli.py tests/test_readme.py

data/train.csv:
	$(MAKE) data

data: install
	$(BIN)/bp-train data fetch --dest data $(MIRROR)

train: install $(TRAIN_CSV)
	$(BIN)/bp-train fit --config $(CONFIG) --data $(TRAIN_CSV) --out $(RUN) --overwrite

predict: install
	$(BIN)/bp-train predict --model $(RUN)/model.npz --data $(TEST_CSV) --out submission.csv

evaluate: install
	$(BIN)/bp-train evaluate --model $(RUN)/model.npz --data data/test.csv --labels data/test_labels.csv

gradcheck: install
	$(BIN)/bp-train gradcheck --config $(CONFIG)

compare-speed: install
	$(BIN)/bp-train compare-speed --config $(CONFIG) --sizes 10,50,100,200

# The Kaggle entry: an ensemble of kaggle-cnn.yaml (the fast CNN with a 5x5 first convolution), one member
# per seed, averaged with test-time augmentation; KAGGLE_CONFIG=configs/kaggle-deep.yaml trains stronger
# members in twice the time, KAGGLE_CONFIG=configs/kaggle-strided.yaml the strongest in 2.5 times (55 against
# 22 minutes a member).
# Interrupted, `make kaggle` again finishes the members left (fit --resume on the ensemble folder); with
# more SEEDS it adds the members the folder lacks.
KAGGLE_CONFIG ?= configs/kaggle-cnn.yaml
SEEDS    ?= 0,1,2,3
# DEVICE=cuda trains the members on an NVIDIA GPU (CuPy: .venv/bin/python -m pip install -e '.[gpu]'),
# one after another; empty, the config's train.device decides (cpu for the shipped ones).
DEVICE   ?=
# Members trained at once (fit --jobs): two on a machine of two cores or more, one on a single core or a
# GPU. An even number of members, so that none trains alone on one of two cores at the end.
JOBS     ?= $(if $(filter cuda,$(DEVICE)),1,$(if $(filter 1,$(shell nproc 2>/dev/null || echo 1)),1,2))
# The folder is named after the config, as fit --seeds names one, so that each config keeps its own members.
ENSEMBLE ?= runs/$(basename $(notdir $(KAGGLE_CONFIG)))-ensemble
SUBMISSION ?= submission.csv
DEVICE_OPTION = $(if $(DEVICE),--device $(DEVICE))
# EPOCHS=45 trains each member that many epochs instead of the config's (fit --epochs). Run again with more,
# it trains finished members on from their last epoch, their schedule stretched to the new length: not
# the same weights as that many epochs from the start.
EPOCHS   ?=
EPOCHS_OPTION = $(if $(EPOCHS),--epochs $(EPOCHS))

# Everything is checked before the first member trains (about 20 minutes each): the make variables, which
# files are the data, the test CSV's shape and whether SUBMISSION can be written.
kaggle: install
	@test -n "$(strip $(SEEDS))" || { echo "make kaggle: SEEDS is empty; give the members' seeds, e.g. SEEDS=0,1,2,3" >&2; exit 2; }
	@test -n "$(strip $(JOBS))" || { echo "make kaggle: JOBS is empty; give how many members train at once, e.g. JOBS=2" >&2; exit 2; }
	@if [ "$(origin TRAIN_CSV)" = file ] && [ $(words $(TRAIN_FOUND)) -gt 1 ]; then echo "make kaggle: $(DATA)/ holds both \
	$(TRAIN_FOUND) (MNIST's from make train, and the competition's?); move one away, or say which: make kaggle TRAIN_CSV=$(lastword $(TRAIN_FOUND))" >&2; exit 2; fi
	@if [ "$(origin TEST_CSV)" = file ] && [ $(words $(TEST_FOUND)) -gt 1 ]; then echo "make kaggle: $(DATA)/ holds both \
	$(TEST_FOUND) (MNIST's from make train, and the competition's?); move one away, or say which: make kaggle TEST_CSV=$(lastword $(TEST_FOUND))" >&2; exit 2; fi
	@test -f "$(TRAIN_CSV)" -a -f "$(TEST_CSV)" || { echo "make kaggle needs the competition's train.csv and test.csv \
	(plain or .gz) in $(DATA)/: https://www.kaggle.com/competitions/digit-recognizer/data; or give TRAIN_CSV=... TEST_CSV=..." >&2; exit 2; }
	@$(BIN)/bp-train data check "$(TEST_CSV)" --unlabelled --writable "$(SUBMISSION)" --kaggle-rows 28000
	@if [ -f "$(ENSEMBLE)/ensemble.yaml" ]; then \
		$(BIN)/bp-train fit --resume "$(ENSEMBLE)" --seeds $(SEEDS) --jobs $(JOBS) $(EPOCHS_OPTION) $(DEVICE_OPTION); \
	else \
		$(BIN)/bp-train fit --config $(KAGGLE_CONFIG) --data "$(TRAIN_CSV)" --seeds $(SEEDS) --jobs $(JOBS) \
			--out "$(ENSEMBLE)" $(EPOCHS_OPTION) $(DEVICE_OPTION); \
	fi
	$(BIN)/bp-train predict --model "$(ENSEMBLE)" --tta --data "$(TEST_CSV)" --out "$(SUBMISSION)" $(DEVICE_OPTION)

bench: install
	$(BIN)/bp-train bench --data $(REPLICA) --busy --profile --config configs/default.yaml --config configs/deep.yaml \
		--config configs/mlp-800-800.yaml --config configs/best.yaml \
		--config configs/best-augmented.yaml --config configs/cnn.yaml --config configs/fast-cnn.yaml

tune: install $(TRAIN_CSV)
	$(BIN)/bp-train tune --config configs/tune-default.yaml --data $(TRAIN_CSV)

figures: install
	$(BIN)/python docs/figures.py --data $(REPLICA) --mnist $(SHARED)/mnist $(if $(TORCH_PYTHON),--torch-python $(TORCH_PYTHON))

plot: install
	$(BIN)/bp-train plot $(RUN)

# The textbook's chapter-6 experiments on the Kaggle-format data, a minute or two each: every variant is an
# ordinary fit of the same network, trained with two seeds so that a difference can be told from the
# noise (bp_train/training/experiments.py). Each writes runs/compare-NAME/compare.png and prints every
# variant's final accuracies per seed; running one again replaces its runs.
compare-optimizers compare-init compare-batchnorm compare-dropout: install
	$(BIN)/bp-train compare $(patsubst compare-%,%,$@) --data $(REPLICA) --threads 2

clean:
	rm -rf runs build *.egg-info .pytest_cache .hypothesis $(VENV) submission.csv
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
