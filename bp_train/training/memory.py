"""Refusing to train what cannot fit: a rough estimate of training's peak memory, checked before a run
folder is touched. Only training asks: a model file loads on any machine that can hold its weights."""

from __future__ import annotations

from ..config.build import dense_widths, maps
from ..config.schema import Config
from ..errors import ConfigError
from ..machine.memory import available_memory
from ..nn.conv import output_size


def conv_bytes(config: Config) -> list[tuple[int, int]]:
    """Per conv block: (weights, numbers per sample) -- the patch matrix, its gradient and the maps."""
    parts = []
    for block, (h, w, c) in zip(config.model.conv, maps(config)):
        positions = output_size(h, block.kernel, block.stride, block.pad) * output_size(
            w, block.kernel, block.stride, block.pad
        )
        parts.append(
            (
                (block.kernel * block.kernel * c + 1) * block.filters,
                positions * (block.kernel * block.kernel * c * 2 + block.filters * 6),
            )
        )
    return parts


def estimate_bytes(config: Config) -> tuple[int, int]:
    """(rough peak bytes of training, of which the conv blocks' share): weights, gradients and two optimizer
    slots, plus a batch's activations."""
    sizes = dense_widths(config)
    itemsize = 4 if config.model.dtype == "float32" else 8
    dense_weights = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    dense_per_sample = sum(sizes) * 4  # outputs, masks, gradients, scratch
    conv = conv_bytes(config)
    conv_total = sum(weights * 4 + config.train.batch_size * per_sample for weights, per_sample in conv) * itemsize
    return (dense_weights * 4 + config.train.batch_size * dense_per_sample) * itemsize + conv_total, conv_total


def check_training_memory(config: Config, have: int | None = None, at_once: int = 1) -> None:
    """A ConfigError naming the part at fault when training `config` (`at_once` copies of it, side by side)
    needs more memory than is free."""
    (need, conv_need), have = estimate_bytes(config), available_memory() if have is None else have
    if at_once > 1 and need * at_once > have:
        raise ConfigError(
            f"--jobs {at_once}: {at_once} members side by side need about "
            f"{need * at_once / 2**30:.1f} GiB, more than the {have / 2**30:.1f} GiB available; "
            "use fewer --jobs"
        )
    if need <= have:
        return
    if conv_need > need / 2:
        culprit = (
            f"model.conv: the convolution blocks need about {conv_need / 2**30:.1f} GiB of it (their patch "
            f"matrices, batch {config.train.batch_size}); use fewer filters, a smaller batch or pooling"
        )
    else:
        culprit = (
            f"model.hidden: the dense layers {config.layer_sizes} need most of it (batch "
            f"{config.train.batch_size}); use smaller layers"
        )
    raise ConfigError(
        f"this network needs about {need / 2**30:.1f} GiB to train, more than the "
        f"{have / 2**30:.1f} GiB available; {culprit}"
    )
