"""The textbook's chapter-6 experiments: one network trained a few ways, each way with two seeds, so that
a difference can be told from the noise.

Every variant is an ordinary fit of the same 5-layer network (4 hidden layers of 100 ReLU units) on the
Kaggle-format data; `bp-train compare NAME` runs one experiment, overlays the first seed's learning
curves, and reports each variant's final figures for every seed with their spread. The settings follow
the textbook's (SGD, small learning rates, a few thousand steps); where the result here differs from the
book's, the caption says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import load_config
from .trainer import Trainer, training_digits

NET = "model.hidden=[{{size: 100{0}}}, {{size: 100{0}}}, {{size: 100{0}}}, {{size: 100{0}}}]"
SGD = ["train.optimizer={name: sgd, lr: 0.01}", "train.schedule.name=constant"]


@dataclass
class Experiment:
    caption: str  # what to look for, as docs/learning.md says it
    variants: dict[str, list[str]]  # label -> --set overrides
    epochs: int


EXPERIMENTS = {
    "optimizers": Experiment(
        "plain SGD is the slowest; momentum, AdaGrad, RMSprop and Adam pass 96% within six epochs",
        {
            name: [NET.format(""), "train.schedule.name=constant", f"train.optimizer={{name: {name}, lr: {lr}}}"]
            for name, lr in (("sgd", 0.01), ("momentum", 0.01), ("adagrad", 0.01), ("rmsprop", 0.001), ("adam", 0.001))
        },
        6,
    ),
    "init": Experiment(
        "initial weights of std 0.01 never leave chance (10%); Xavier's learn; He's, made for ReLU, learn fastest",
        {f"init {init}": [NET.format(""), *SGD, f"model.init={init}"] for init in ("0.01", "xavier", "he")},
        6,
    ),
    "batchnorm": Experiment(
        "with BatchNorm the same network, at the same learning rate, is ahead from the first epoch (both start "
        "from Xavier's weights, with which a plain ReLU network starts slowly)",
        {
            f"batchnorm {flag}": [NET.format(f", batchnorm: {flag}"), *SGD, "model.init=xavier"]
            for flag in ("false", "true")
        },
        4,
    ),
    "dropout": Experiment(
        "1,000 training rows, 9,000 validation rows: the network learns the training rows by heart (100%); "
        "dropout (0.5, and 0.2 on the input) narrows the gap to validation and lifts validation. In the "
        "textbook's narrow 5-layer network it barely did here, so this one is the wide 784-800-800-10 that "
        "dropout was made for",
        {
            f"dropout {p}": [
                f"model.hidden=[{{size: 800, dropout: {p}}}, {{size: 800, dropout: {p}}}]",
                f"model.input_dropout={q}",
                "train.optimizer={name: sgd, lr: 0.05}",
                "train.schedule.name=constant",
                "data.train_rows=10000",
                "data.val_fraction=0.9",
            ]
            for p, q in (("0.0", "0.0"), ("0.5", "0.2"))
        },
        100,
    ),
}


def variant_folder(out: Path, label: str, seed: int) -> Path:
    """Where one variant's run with one seed goes: out/init-he-s0/."""
    return out / f"{label.replace(' ', '-')}-s{seed}"


def run_variant(overrides: list[str], data: str, seed: int, epochs: int, folder: Path, show_progress=False) -> dict:
    """One fit; its learning curve, and its final accuracies with training accuracy measured as validation
    is (evaluation mode, no dropout), so that a train-validation gap is a real one."""
    config = load_config(
        None, [*overrides, f"data.train={data}", f"train.seed={seed}", f"train.epochs={epochs}", f"name={folder.name}"]
    )
    digits = training_digits(config)
    trainer = Trainer(config, folder, show_progress=show_progress, digits=digits)
    trainer.fit(log=lambda line: None)
    train_accuracy = trainer.network.accuracy(trainer.x_train, trainer.t_train)
    history = trainer.state.history
    return {
        "seed": seed,
        "val_accuracy": [row["val_accuracy"] for row in history],
        "train_accuracy": float(train_accuracy),
        "final_val": history[-1]["val_accuracy"],
        "gap": float(train_accuracy) - history[-1]["val_accuracy"],
    }


def run_experiment(
    name: str,
    data: str,
    out: Path,
    seeds=(0, 1),
    log=print,
    also: tuple[str, ...] = (),
    epochs: int | None = None,
    show_progress: bool = False,
) -> dict:
    """Every variant with every seed, into out/<variant>-s<seed>/; the figures per variant. `also` (--set
    assignments applied after each variant's own) and `epochs` make a smaller version of the experiment,
    as the tests run it."""
    experiment = EXPERIMENTS[name]
    epochs = epochs or experiment.epochs
    summary = {"experiment": name, "caption": experiment.caption, "epochs": epochs, "variants": {}}
    for label, overrides in experiment.variants.items():
        runs = []
        for seed in seeds:
            folder = variant_folder(out, label, seed)
            runs.append(run_variant([*overrides, *also], data, seed, epochs, folder, show_progress))
            log(
                f"{label}, seed {seed}: validation {runs[-1]['final_val']:.4f}, training {runs[-1]['train_accuracy']:.4f}"
            )
        finals, gaps = [r["final_val"] for r in runs], [r["gap"] for r in runs]
        summary["variants"][label] = {
            "runs": runs,
            "mean_val": float(np.mean(finals)),
            "spread_val": float(np.ptp(finals)),
            "mean_gap": float(np.mean(gaps)),
            "spread_gap": float(np.ptp(gaps)),
        }
    return summary


def format_summary(summary: dict) -> str:
    lines = [
        f"{summary['experiment']} ({summary['epochs']} epochs): {summary['caption']}",
        "",
        f"{'variant':<18}{'validation, per seed':>24}{'mean':>8}{'spread':>8}{'train - val':>13}",
    ]
    for label, figures in summary["variants"].items():
        per_seed = " ".join(f"{r['final_val']:.4f}" for r in figures["runs"])
        lines.append(
            f"{label:<18}{per_seed:>24}{figures['mean_val']:8.4f}{figures['spread_val']:8.4f}"
            f"{figures['mean_gap']:13.4f}"
        )
    return "\n".join(lines)
