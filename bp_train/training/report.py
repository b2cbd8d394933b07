"""Evaluation reports: accuracy, loss, per-class precision / recall / F1, confusion matrix, and digits as
text art for terminals without a display."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.digits import check_labels, load_digits, to_float
from ..errors import DataError
from ..nn.backend import to_device, to_host
from .trainer import evaluate_split, split_rows


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, classes: int = 10) -> np.ndarray:
    """counts[i, j] = how many digits of true class i were predicted as j."""
    return np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)


def per_class(confusion: np.ndarray) -> list[dict]:
    """Precision (of the predictions of a class, how many were right), recall (of the true members, how
    many were found) and their harmonic mean F1, per class; 0 where undefined."""
    hits = np.diag(confusion).astype(float)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, actual, out=np.zeros_like(hits), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return [
        {
            "class": c,
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(actual[c]),
        }
        for c in range(len(hits))
    ]


def top_confusions(confusion: np.ndarray, count: int = 5) -> list[dict]:
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:count]
    return [
        {"true": int(i), "predicted": int(j), "count": int(off[i, j])}
        for i, j in zip(*np.unravel_index(order, off.shape))
        if off[i, j] > 0
    ]


def evaluate(model, images: np.ndarray, labels: np.ndarray, source: str) -> dict:
    """Every figure of the evaluation report, as plain Python values (ready for --json). `model` is a
    voting.Ensemble: one network is scored with its own loss; several (or TTA) by their averaged
    probabilities, with the loss their cross-entropy and each member's accuracy reported beside them."""
    network = model.network
    if images.shape[1] != network.sizes[0]:
        raise DataError(f"{source}: rows have {images.shape[1]} pixels but the model expects {network.sizes[0]}")
    check_labels(labels, network.sizes[-1], source)
    x = to_float(images, network.dtype)
    labels = labels.astype(np.intp)
    members = None
    if model.single:
        loss, accuracy, predicted = evaluate_split(network, to_device(x, network.xp), to_device(labels, network.xp))
        predicted = to_host(predicted)
    else:
        with model.reading_bar(len(x)) as bar:
            each = model.member_probabilities(x, progress=bar.update)
        probabilities = each.mean(axis=0)
        predicted = probabilities.argmax(axis=1)
        accuracy = float(np.mean(predicted == labels))
        loss = float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-300))))
        members = [
            {"model": name, "accuracy": float(np.mean(p.argmax(axis=1) == labels))}
            for name, p in zip(model.names, each)
        ]
    confusion = confusion_matrix(labels, predicted, network.sizes[-1])
    result = {
        "data": source,
        "rows": int(len(labels)),
        "loss": loss,
        "accuracy": accuracy,
        "per_class": per_class(confusion),
        "confusion_matrix": confusion.tolist(),
        "top_confusions": top_confusions(confusion),
    }
    if members is not None:
        scores = np.array([m["accuracy"] for m in members])
        result.update(
            members=members,
            tta=len(model.views) > 1,
            member_accuracy_mean=float(scores.mean()),
            member_accuracy_std=float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
        )
    return result


def format_report(result: dict) -> str:
    lines = []
    if "members" in result:
        count, how = len(result["members"]), " with TTA" if result["tta"] else ""
        lines += [f"  {m['model']}: accuracy {m['accuracy']:.4f}{how}" for m in result["members"]]
        if count > 1:
            lines += [
                f"members: mean accuracy {result['member_accuracy_mean']:.4f} +- "
                f"{result['member_accuracy_std']:.4f} (standard deviation over {count})",
                f"the ensemble of {count} (probabilities averaged{how}); loss: cross-entropy of the average",
            ]
        else:
            lines += ["with TTA (probabilities averaged over the shifted views); loss: cross-entropy of the average"]
    lines += [
        f"{result['data']}: {result['rows']} rows, accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}",
        "",
        "class  precision  recall  f1      support",
    ]
    lines += [
        f"{r['class']:>5}  {r['precision']:9.4f}  {r['recall']:6.4f}  {r['f1']:6.4f}  {r['support']:7d}"
        for r in result["per_class"]
    ]
    matrix = result["confusion_matrix"]
    lines += [
        "",
        "confusion matrix (rows: true digit, columns: predicted)",
        "       " + "".join(f"{j:>6}" for j in range(len(matrix))),
    ]
    lines += [f"{i:>6} " + "".join(f"{v:>6}" for v in row) for i, row in enumerate(matrix)]
    if result["top_confusions"]:
        lines += [
            "",
            "most frequent confusions: "
            + ", ".join(f"{c['true']} as {c['predicted']} ({c['count']})" for c in result["top_confusions"]),
        ]
    return "\n".join(lines)


SHADES = " .:-=+*#%@"


def text_art(image: np.ndarray, width: int = 28) -> list[str]:
    """A 28x28 uint8 digit as 28 lines of characters, darker characters for darker ink."""
    levels = (image.reshape(-1, width).astype(int) * (len(SHADES) - 1) + 127) // 255
    return ["".join(SHADES[v] * 2 for v in row) for row in levels]


def validation_rows(config, cache: bool = True):
    """The validation rows of a run, split exactly as fit split them (None if it had no split)."""
    digits = load_digits(config.data.train, require_labels=True, cache=cache)
    return split_rows(config, digits)[1]


def run_validation(run_dir: Path, cache: bool = True):
    """A run's model and config, its validation rows (as fit split them) and its predictions for them;
    (network, config, None, None) for a run trained without a validation split."""
    from ..files.model import load_model

    network, config, _ = load_model(Path(run_dir) / "model.npz")
    val = validation_rows(config, cache)
    if val is None:
        return network, config, None, None
    check_labels(val.labels, network.sizes[-1], config.data.train)
    predicted = to_host(network.predict(to_float(val.images, network.dtype), batch_size=10_000).argmax(axis=1))
    return network, config, val, predicted


def misclassified(val, predicted: np.ndarray, limit: int = 10) -> list[tuple[np.ndarray, str]]:
    """Validation digits the model gets wrong, as (image, caption) pairs."""
    wrong = np.flatnonzero(predicted != val.labels)[:limit]
    return [(val.images[i], f"true {val.labels[i]}, predicted {predicted[i]}") for i in wrong]
