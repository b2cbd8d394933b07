"""The training loop: epochs of shuffled mini-batches, one gradient and one optimizer step per batch.

A run folder (default `runs/<config-name>/`, numbered `-2`, `-3`, ... when taken; see runfolder.py)
receives, each written atomically:
    config.yaml     the resolved config (file + overrides), as the run used it
    metrics.csv     one row per epoch: losses, accuracies, learning rate, seconds
    model.npz       the weights to use (the last epoch's, or the best epoch's under early stopping)
    checkpoint.npz  everything needed to resume: weights, optimizer state, RNG states, history

The checkpoint is rewritten after every epoch, so Ctrl-C or a crash costs at most the epoch under way.
"""

from __future__ import annotations

import csv
import io
import math
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..config import Config, build_network, dump_config
from ..config.build import learning_rate_at, optimizer_for
from ..data.augment import Augmenter, augment_rng
from ..data.digits import Digits, Shuffler, load_digits, resolve, split, to_float
from ..data.fingerprints import fingerprints
from ..errors import ConfigError, DataError, DivergenceError, Interrupted, ctrl_c_held
from ..files.model import save_model
from ..files.store import remove_orphaned_temporaries, write_text
from ..machine.threads import blas_threads, chosen_threads
from ..nn.backend import to_device
from ..nn.fast_layers import FastConvolution
from ..nn.network import Network
from .checkpoint import RunState, restore_checkpoint, save_checkpoint
from .memory import check_training_memory
from .runfolder import RunFolder
from .split import SplitNetwork, splittable

METRIC_COLUMNS = ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
# A mean cross-entropy this large gives the true digit a probability of e^-10000: only exploding weights
# do that, and they reach NaN soon after. Stopping here saves the wait.
DIVERGED_LOSS = 1e4


def evaluate_split(network: Network, x: np.ndarray, labels: np.ndarray, batch_size: int = 10_000):
    """(mean loss, accuracy, predicted labels) in evaluation mode, in bounded-memory chunks."""
    batch_size = min(batch_size, network.eval_batch)
    total_loss, predicted = 0.0, np.empty_like(labels, shape=len(x), dtype=np.intp)  # where labels live
    for i in range(0, len(x), batch_size):
        xb, tb = x[i : i + batch_size], labels[i : i + batch_size]
        total_loss += network.loss(xb, tb) * len(xb)
        predicted[i : i + batch_size] = network.last_layer.y.argmax(axis=1)
    return total_loss / len(x), float(np.mean(predicted == labels)), predicted


def training_digits(config: Config, cache: bool = True) -> Digits:
    """The labelled rows of data.train (or its .gz), or an error that says where to get them."""
    if not resolve(config.data.train).exists():
        raise DataError(
            f"{config.data.train}: training data not found (data.train, nor a .gz of it); put "
            "the Kaggle train.csv(.gz) there, get MNIST as Kaggle-style CSVs with `make data` or "
            "`bp-train data fetch`, or pass --data CSV"
        )
    return load_digits(config.data.train, require_labels=True, cache=cache)


def split_rows(config: Config, digits: Digits) -> tuple[Digits, Digits | None]:
    """The training and validation rows of a run: the first data.train_rows rows (all by default; a small
    subset shows overfitting), split by the seed."""
    if config.data.train_rows is not None:
        digits = digits.subset(np.arange(min(config.data.train_rows, len(digits))))
    return split(digits, config.data.val_fraction, config.train.seed)


class Trainer:
    """One run: the network, its optimizer, its data and its random streams, made together.

    `digits` are the labelled rows to train on (default: the config's data.train); `on_epoch` is called
    with each epoch's metrics row once the epoch is saved (tune reports to its pruner there)."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        cache: bool = True,
        show_progress: bool = True,
        folder: RunFolder | None = None,
        digits: Digits | None = None,
        on_epoch=None,
    ):
        self.config = config
        self.folder = folder  # the locked run folder, when the CLI claimed one; run_dir is where it writes now
        self.run_dir = folder.path if folder is not None else Path(run_dir)
        self.show_progress = show_progress
        train_cfg = config.train
        self.numerical = train_cfg.gradient == "numerical"
        # Central differences are noise in float32: numerical training always runs in float64.
        dtype = np.float64 if self.numerical else np.dtype(config.model.dtype)
        check_training_memory(config)  # before a single weight is allocated
        self.network = build_network(config, seed=train_cfg.seed, dtype=dtype, device=train_cfg.device)
        self.optimizer = optimizer_for(config)
        self.shuffle_rng = np.random.default_rng([train_cfg.seed, 2])
        self.augment_rng = augment_rng(train_cfg.seed)
        self.augmenter = None
        self.halves = None  # the batch split over two threads, once batch_halves decides for it
        self.augment_seconds = 0.0  # time spent distorting batches, for `bench`
        if train_cfg.augment is not None:
            self.augmenter = Augmenter(train_cfg.augment, config.model.input_shape, self.augment_rng)
        self.state = RunState()
        self.saved_epoch = 0
        self.on_epoch = on_epoch
        self._load_data(digits if digits is not None else training_digits(config, cache))

    # --- data ------------------------------------------------------------------------------------------

    def _load_data(self, digits: Digits) -> None:
        train, val = split_rows(self.config, digits)
        dtype = self.network.dtype
        classes = self.config.model.output_size
        if int(digits.labels.max()) >= classes:
            raise ConfigError(
                f"model.output_size is {classes} but {digits.source} has label {int(digits.labels.max())}; "
                f"the network needs an output per class (output_size >= {int(digits.labels.max()) + 1})"
            )
        # To the network's device once, not batch by batch (a no-op on the CPU).
        xp = self.network.xp
        self.x_train = to_device(to_float(train.images, dtype), xp)
        self.t_train = to_device(train.labels.astype(np.intp), xp)
        self.x_val = to_device(to_float(val.images, dtype), xp) if val is not None else None
        self.t_val = to_device(val.labels.astype(np.intp), xp) if val is not None else None
        self.fingerprint = fingerprints(train.images)  # lets `evaluate` warn about rows seen in training
        self.shuffler = Shuffler(self.x_train, self.t_train, self.config.train.batch_size, self.shuffle_rng)
        if self.x_train.shape[1] != self.config.model.input_size:
            raise ConfigError(
                f"model.input_size is {self.config.model.input_size} but "
                f"{digits.source} has {self.x_train.shape[1]} pixels per row"
            )

    # --- one epoch -------------------------------------------------------------------------------------

    def run_epoch(self, epoch: int) -> dict:
        net, opt = self.network, self.optimizer
        steps = len(self.shuffler)
        halves = self.batch_halves()
        bar = self.progress_bar(epoch, steps)
        started = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        # Overflow on the way to a NaN loss is reported once, as divergence, not as NumPy warnings.
        # With the batch split in two (split.py) each half's BLAS keeps to one thread: two threads each
        # would spin against each other on two cores.
        with np.errstate(over="ignore", invalid="ignore"), bar, blas_threads(1) if halves else nullcontext():
            for i, (xb, tb) in enumerate(self.shuffler.epoch()):
                if self.augmenter is not None:
                    drawn = time.perf_counter()
                    # training batches only: validation never sees distortions. Drawn on the host,
                    # computed where the batch lives. (On a GPU this times the launching, not the work.)
                    xb = self.augmenter(xb)
                    self.augment_seconds += time.perf_counter() - drawn
                opt.lr = learning_rate_at(self.config, epoch - 1 + (i + 1) / steps)
                if self.numerical:
                    grads, vectors = net.numerical_gradient(xb, tb, progress=bar.update), None
                else:
                    step = halves if halves is not None else net
                    grads, vectors = step.gradient(xb, tb), net.vectors  # views of net.vectors: one step over all
                    bar.update(1)
                loss = net.last_loss  # the training-mode loss at the point differentiated
                self.check_divergence(epoch, f"batch {i + 1}", loss)
                if vectors is None:
                    opt.update(net.params, grads)
                else:
                    opt.update_vectors(net.params, vectors)  # the gradient vector is spent
                loss_sum += loss * len(tb)
                # A count on the network's device: reading it (int) would make the CPU wait for the GPU's
                # queued work, so it is read only for the progress bar and at the end of the epoch.
                correct = correct + (net.last_layer.y.argmax(axis=1) == tb).sum()
                seen += len(tb)
                if i % 50 == 0:
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{int(correct) / seen:.4f}", refresh=False)
        seconds = time.perf_counter() - started
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / len(self.x_train),
            "train_accuracy": int(correct) / len(self.x_train),
            "val_loss": None,
            "val_accuracy": None,
            "lr": opt.lr,
            "seconds": seconds,
        }
        if self.x_val is not None:
            row["val_loss"], row["val_accuracy"], _ = evaluate_split(net, self.x_val, self.t_val)
            self.check_divergence(epoch, "validation", row["val_loss"])
        return row

    def progress_bar(self, epoch: int, steps: int):
        net = self.network
        total, unit = (steps * net.parameter_count, "grad entry") if self.numerical else (steps, "batch")
        return tqdm(
            total=total,
            unit=unit,
            desc=f"epoch {epoch}/{self.config.train.epochs}",
            leave=False,
            disable=not self.show_progress,
            dynamic_ncols=True,
            mininterval=0.25,
        )

    def batch_halves(self) -> SplitNetwork | None:
        """The batch split in two halves on two threads (split.py) where that is faster: a convolutional
        network on the CPU, with the command's two BLAS threads (one core busy elsewhere gives one thread,
        and the whole batch on it). Made once per run."""
        if self.halves is None and not self.numerical and chosen_threads() == 2 and splittable(self.network):
            if any(isinstance(layer, FastConvolution) for layer in self.network.layers.values()):
                self.halves = SplitNetwork(self.network)
        return self.halves

    def check_divergence(self, epoch: int, where: str, loss: float) -> None:
        """Stop at once on a NaN, infinite or exploding loss, keeping the checkpoint already on disk."""
        if math.isfinite(loss) and loss <= DIVERGED_LOSS:
            return
        raise DivergenceError(
            f"training diverged in epoch {epoch} ({where}): the loss became {loss:.4g}. {self.what_is_kept()}; "
            f"try a lower learning rate (train.optimizer.lr is {self.config.train.optimizer.lr})"
        )

    def what_is_kept(self) -> str:
        """What a failure now leaves on disk, for its message."""
        if self.folder is not None and self.folder.pending:
            return (
                f"Nothing was replaced: --overwrite swaps the new run in only after its first epoch, and "
                f"{self.folder.target} still holds the previous run"
            )
        return f"The last good checkpoint (after epoch {self.saved_epoch}) is kept in {self.run_dir}"

    # --- the run ---------------------------------------------------------------------------------------

    def monitor(self, row: dict) -> bool:
        """Update the best-so-far from this epoch's row; True if this epoch is the new best."""
        stopping = self.config.train.early_stopping
        st = self.state
        if stopping is None or row["val_loss"] is None:
            st.best_epoch = row["epoch"]  # without early stopping the last epoch is the one kept
            return True
        value = row[stopping.metric]
        sign = 1 if stopping.metric == "val_loss" else -1  # lower loss is better, higher accuracy is
        if st.best_value is None or sign * (value - st.best_value) < -stopping.min_delta:
            st.best_epoch, st.best_value, st.bad_epochs = row["epoch"], value, 0
            return True
        st.bad_epochs += 1
        st.stopped_early = st.bad_epochs >= stopping.patience
        return False

    def fit(self, log=print) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        remove_orphaned_temporaries(self.run_dir)
        write_text(self.run_dir / "config.yaml", dump_config(self.config))
        if self.state.epoch == 0:
            self.save_checkpoint()  # so that even an interrupt in epoch 1 leaves something to resume
        started = time.perf_counter()
        cfg = self.config.train
        try:
            while self.state.epoch < cfg.epochs and not self.state.stopped_early:
                self.run_and_save_epoch(log)
        except KeyboardInterrupt:
            resume = (
                ""
                if self.folder is not None and self.folder.pending
                else f". Resume with: bp-train fit --resume {self.run_dir}"
            )
            raise Interrupted(
                f"interrupted during epoch {self.saved_epoch + 1}. {self.what_is_kept()}{resume}"
            ) from None
        if self.state.stopped_early:
            log(
                f"early stopping after epoch {self.state.epoch}: no improvement of "
                f"{cfg.early_stopping.metric} for {cfg.early_stopping.patience} epochs"
            )
        last = self.state.history[-1] if self.state.history else {}
        best = next((r for r in self.state.history if r["epoch"] == self.state.best_epoch), last)
        return {
            "run_dir": str(self.run_dir),
            "model": str(self.run_dir / "model.npz"),
            "epochs": self.state.epoch,
            "best_epoch": self.state.best_epoch,
            "stopped_early": self.state.stopped_early,
            "train_loss": best.get("train_loss"),
            "train_accuracy": best.get("train_accuracy"),
            "val_loss": best.get("val_loss"),
            "val_accuracy": best.get("val_accuracy"),
            "seconds": round(time.perf_counter() - started, 3),
            "train_seconds": round(sum(r["seconds"] for r in self.state.history), 3),
        }

    def run_and_save_epoch(self, log) -> None:
        epoch = self.state.epoch + 1
        row = self.run_epoch(epoch)
        self.state.history.append(row)
        self.state.epoch = epoch
        # The epoch's files go as a whole: a Ctrl-C between metrics.csv and checkpoint.npz would leave one
        # a row ahead of the other, so it waits until both (and the log line) are out.
        with ctrl_c_held():
            if self.monitor(row):
                save_model(
                    self.run_dir / "model.npz",
                    self.network,
                    self.config.to_dict(),
                    {"epoch": epoch, "val_accuracy": row["val_accuracy"]},
                    fingerprint=self.fingerprint,
                )
            self.write_metrics()
            self.save_checkpoint()
            if self.folder is not None:
                self.run_dir = self.folder.epoch_saved()  # an --overwrite takes the old run's place now
            val = (
                f", val loss {row['val_loss']:.4f}, val acc {row['val_accuracy']:.4f}"
                if row["val_loss"] is not None
                else ""
            )
            log(
                f"epoch {epoch}/{self.config.train.epochs}: train loss {row['train_loss']:.4f}, "
                f"train acc {row['train_accuracy']:.4f}{val} ({row['seconds']:.1f} s)"
            )
        if self.on_epoch is not None:
            self.on_epoch(row)  # e.g. `tune` reporting to its pruner, which may stop the run by raising

    # --- files -----------------------------------------------------------------------------------------

    def write_metrics(self) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.state.history:
            writer.writerow({k: (repr(v) if isinstance(v, float) else "" if v is None else v) for k, v in row.items()})
        write_text(self.run_dir / "metrics.csv", out.getvalue())

    def random_streams(self) -> dict:
        return {"shuffle": self.shuffle_rng, "dropout": self.network.dropout_rng, "augment": self.augment_rng}

    def save_checkpoint(self) -> None:
        save_checkpoint(
            self.run_dir / "checkpoint.npz",
            self.config.to_dict(),
            self.network,
            self.optimizer,
            self.state,
            self.random_streams(),
        )
        self.saved_epoch = self.state.epoch  # what a resume would start from

    def restore(self, checkpoint: Path) -> None:
        """The run as its checkpoint left it (checkpoint.py checks everything before anything is set)."""
        self.state = restore_checkpoint(checkpoint, self.network, self.optimizer, self.random_streams())
        self.saved_epoch = self.state.epoch
        self.state.stopped_early = False  # more epochs were asked for: let the run go on


def fit(
    config: Config,
    run_dir: str | Path | RunFolder,
    resume: bool = False,
    cache: bool = True,
    show_progress: bool = True,
    log=print,
    digits: Digits | None = None,
    on_epoch=None,
) -> dict:
    """Train `config` into `run_dir` (resuming the run there if `resume`) and return the summary figures.
    `run_dir` may be a claimed RunFolder (as the CLI passes), which the trainer tells of each saved epoch."""
    folder = run_dir if isinstance(run_dir, RunFolder) else None
    trainer = Trainer(
        config,
        run_dir if folder is None else folder.path,
        cache=cache,
        show_progress=show_progress,
        folder=folder,
        digits=digits,
        on_epoch=on_epoch,
    )
    if resume:
        trainer.restore(Path(trainer.run_dir) / "checkpoint.npz")
        if trainer.state.epoch >= config.train.epochs:
            log(f"{trainer.run_dir} already has {trainer.state.epoch} epochs; raise train.epochs to train further")
    return trainer.fit(log)
