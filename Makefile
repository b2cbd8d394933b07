# bp-train: common runs. `make help` lists them.
PYTHON  ?= python3
CONFIG  ?= configs/default.yaml
NAME    := $(basename $(notdir $(CONFIG)))
RUN     ?= runs/$(NAME)
# The local copy of MNIST that CI and the developers' machines have beside the checkout, used as the
# download mirror when present (no network needed); elsewhere the public mirrors are used.
SHARED  := $(abspath ../shared/data)
MIRROR  ?= $(if $(wildcard $(SHARED)/mnist/train-images-idx3-ubyte.gz),--mirror file://$(SHARED)/mnist/)
REPLICA ?= $(if $(wildcard $(SHARED)/kaggle-replica/train.csv.gz),$(SHARED)/kaggle-replica/train.csv.gz,data/train.csv)

.PHONY: help install test train predict evaluate data gradcheck compare-speed bench plot clean

help:
	@echo "make train          install, fetch MNIST if data/train.csv is missing, train CONFIG=$(CONFIG)"
	@echo "make test           install and run the test suite"
	@echo "make predict        write submission.csv from $(RUN)/model.npz and data/test.csv"
	@echo "make evaluate       report on data/test.csv with data/test_labels.csv"
	@echo "make data           download MNIST and write data/train.csv, test.csv, test_labels.csv"
	@echo "make gradcheck      backprop against numerical gradients for CONFIG"
	@echo "make compare-speed  how much faster backprop is, for growing networks"
	@echo "make bench          training speed against this machine's matmul peak"
	@echo "make plot           learning curves, confusion matrix, misclassified digits of $(RUN)"
	@echo "make clean          remove runs/, caches and build files (not data/)"

install: .make-installed
.make-installed: pyproject.toml
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[dev,plot]'
	@touch $@

test: install
	$(PYTHON) -m pytest -q

data/train.csv:
	$(MAKE) data

data: install
	bp-train data fetch --dest data $(MIRROR)

train: install data/train.csv
	bp-train fit --config $(CONFIG) --out $(RUN)

predict: install
	bp-train predict --model $(RUN)/model.npz --data data/test.csv --out submission.csv

evaluate: install
	bp-train evaluate --model $(RUN)/model.npz --data data/test.csv --labels data/test_labels.csv

gradcheck: install
	bp-train gradcheck --config $(CONFIG)

compare-speed: install
	bp-train compare-speed --config $(CONFIG) --sizes 10,50,100,200

bench: install
	bp-train bench --data $(REPLICA) --config configs/default.yaml --config configs/deep.yaml \
		--config configs/mlp-800-800.yaml $(if $(wildcard configs/best.yaml),--config configs/best.yaml)

plot: install
	bp-train plot $(RUN)

clean:
	rm -rf runs build *.egg-info .pytest_cache .hypothesis .make-installed submission.csv
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
