"""Several networks as one: soft voting, and test-time augmentation.

Soft voting averages the members' class probabilities and takes the most probable class. Networks
trained alike from different seeds make different mistakes, so the average is right more often than any
one of them: on MNIST, the best-known entries are ensembles of the same CNN.

Test-time augmentation (TTA) averages one network's probabilities over a few fixed copies of each digit
-- moved a pixel left, right, up, down, turned a little -- resampled by the augmentation code
training uses
(data/augment.py). A digit the network reads badly where it stands may be read well a pixel away.

An Ensemble of one network with no TTA is that network: its probabilities are the network's own, the
same numbers, so every command can take one or several models through the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.augment import shifted
from ..errors import ModelFileError
from ..files.ensemble import MAX_MEMBERS, model_files
from ..files.model import load_model
from ..nn.backend import to_device, to_host

# The views --tta averages, (dx, dy, degrees): the digit where it is, moved by one pixel each way, and
# turned 8 degrees each way. Measured on MNIST t10k with fast-cnn-like networks (seed 0): one network
# 99.47% plain, 99.52% with the four shifts, 99.55% with the turns too; an ensemble of three 99.52%,
# 99.53%, 99.58%. docs/commands.md ("Ensembles and TTA") has the figures of the shipped config.
TTA_VIEWS = ((0, 0, 0), (1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 8), (0, 0, -8))
NO_TTA = ((0, 0, 0),)


@dataclass
class Member:
    name: str
    file: Path  # the model file it was loaded from
    network: object
    config: object
    meta: dict


@dataclass
class Ensemble:
    members: list[Member]
    views: tuple = NO_TTA  # TTA's views, (dx, dy) in pixels and a turn in degrees; one unmoved view: no TTA

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def network(self):
        """The first member: what every member shares (input size and shape, classes) is read from it."""
        return self.members[0].network

    @property
    def single(self) -> bool:
        return len(self.members) == 1 and len(self.views) == 1

    def member_probabilities(self, x: np.ndarray, batch_size: int = 10_000, progress=None) -> np.ndarray:
        """(members, N, classes) float64: each member's probabilities, averaged over the TTA views. Each
        view of a batch is made once and read by every member (once per picture shape they read).
        `progress(rows)` is told of each batch read by each member in each view (a progress bar's update)."""
        out = np.zeros((len(self.members), len(x), self.network.sizes[-1]))
        for start in range(0, len(x), batch_size):
            rows = x[start : start + batch_size]
            for dx, dy, degrees in self.views:
                moved = {}  # picture shape -> the rows moved to this view
                for m, member in enumerate(self.members):
                    network, view = member.network, rows
                    if (dx, dy, degrees) != (0, 0, 0):
                        shape = image_shape(network)
                        if shape not in moved:
                            moved[shape] = shifted(rows, shape, (dx, dy), degrees)
                        view = moved[shape]
                    scores = network.predict(to_device(view, network.xp), batch_size=batch_size)
                    out[m, start : start + len(rows)] += network.probabilities(to_host(scores).astype(np.float64))
                    if progress is not None:
                        progress(len(rows))
        out /= len(self.views)
        for member, probabilities in zip(self.members, out):
            if not np.isfinite(probabilities).all():  # never a NaN read as the digit 0
                raise ModelFileError(
                    f"{member.file}: its network gives NaN or infinite scores for some digits (weights that "
                    "overflow?); no answer is better than a wrong one"
                )
        return out

    def probabilities(self, x: np.ndarray, batch_size: int = 10_000, progress=None) -> np.ndarray:
        """(N, classes) float64: the members' probabilities averaged (soft voting)."""
        return self.member_probabilities(x, batch_size, progress).mean(axis=0)

    def reading_bar(self, rows: int):
        """A progress bar for reading `rows` digits, every member in every view, on a terminal only (an
        ensemble with TTA reads 28,000 digits for minutes)."""
        from tqdm import tqdm

        total = rows * len(self.views) * len(self.members)
        return tqdm(total=total, unit="digit", desc="reading", leave=False, disable=None, mininterval=0.5)

    def score_gradient(self, x: np.ndarray, label: int) -> np.ndarray:
        """The members' d(score of `label`)/d(pixels), averaged (the saliency of the ensemble's answer)."""
        return np.mean([to_host(score_gradient(m.network, x, label)) for m in self.members], axis=0)


def score_gradient(network, x: np.ndarray, label: int) -> np.ndarray:
    """d(score of class `label`)/d(input pixels), one row per row of x, in evaluation mode: backprop
    reaches the input too. The backward pass is the one training uses, started from dout = 1 at that
    class's score (before softmax) and 0 elsewhere; the first layer, which in training skips its dL/dx
    (the data needs none), computes it here. Which pixels, made brighter, would raise the score most."""
    scores = network.predict(x)
    dout = np.zeros_like(scores)
    dout[:, label] = 1.0
    first = next(layer for layer in network.layers.values() if hasattr(layer, "need_dx"))
    first.need_dx = True
    try:
        for layer in reversed(network.layers.values()):
            dout = layer.backward(dout)
    finally:
        first.need_dx = False
    return dout


def image_shape(network) -> tuple[int, int, int]:
    """(C, H, W) of the pictures a network reads: a CNN's input_shape, or 28x28 for a 784-pixel MLP."""
    channels, height, width = network.input_shape
    if height > 1 and width > 1:
        return channels, height, width
    if network.sizes[0] == 784:
        return 1, 28, 28
    raise ModelFileError(
        f"--tta moves digits by a pixel, but this model reads {network.sizes[0]} values per "
        "digit, not a picture (give the config model.input_shape)"
    )


def check_compatible(members: list[Member]) -> None:
    """Members must read the same digits and name the same classes; anything else may differ (an MLP and
    a CNN read the same 784 pixels)."""
    first = members[0]
    for member in members[1:]:
        for what, get in (("values per digit", lambda n: n.sizes[0]), ("classes", lambda n: n.sizes[-1])):
            if get(member.network) != get(first.network):
                raise ModelFileError(
                    f"{member.name}: the model has {get(member.network)} {what}, but "
                    f"{first.name} has {get(first.network)}; an ensemble's members must "
                    "read the same digits into the same classes"
                )


def load_ensemble(paths, device: str = "cpu", tta: bool = False) -> Ensemble:
    """Every model the --model paths stand for (files, run folders, ensemble folders), checked to fit
    together. A missing, damaged or foreign member is refused with one line naming it."""
    named = [found for path in paths for found in model_files(path)]  # before any is loaded: bounded
    if len(named) > MAX_MEMBERS:
        raise ModelFileError(
            f"--model: {len(named)} models in all ({len(paths)} --model given); an ensemble averages at most "
            f"{MAX_MEMBERS}"
        )
    members = []
    for name, file in named:
        network, config, meta = load_model(file, device=device)
        members.append(Member(name, Path(file), network, config, meta))
    if not members:
        raise ModelFileError("no model given: pass --model FILE (a model file, run folder or ensemble folder)")
    check_compatible(members)
    if tta:
        image_shape(members[0].network)
    return Ensemble(members, TTA_VIEWS if tta else NO_TTA)
