"""From a config to a network: the YAML's model section turned into the lesson's plain arguments.

The lesson's `Network` knows nothing of YAML (bp_train/nn/ imports nothing of the tool); this is where a
config's `model` and `train` sections become `Network(input_size, hidden_sizes, output_size, ...)`, and
where the tool asks what a config's network will be before building it: the maps each conv block leaves
(to check that the blocks fit), how many weights it has (to check a model file), how many operations a
forward pass takes (for `bench`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ConfigError
from ..nn.backend import array_module
from ..nn.conv import output_size
from ..nn.network import ConvBlock, Network, conv_shapes
from ..nn.optimizers import Optimizer, learning_rate, make_optimizer
from .schema import Config


def network_arguments(config: Config, seed: int = 0, dtype=None) -> dict:
    """The keyword arguments of `Network` that `config` describes; `dtype` overrides model.dtype."""
    model = config.model
    return {
        "input_size": model.input_size,
        "hidden_sizes": [h.size for h in model.hidden],
        "output_size": model.output_size,
        "activation": [h.activation for h in model.hidden],
        "batchnorm": [h.batchnorm for h in model.hidden],
        "dropout": [h.dropout for h in model.hidden],
        "input_dropout": model.input_dropout,
        "input_shape": model.input_shape,
        "conv": [
            ConvBlock(b.filters, b.kernel, b.stride, b.pad, b.activation, b.pool, b.batchnorm, b.dropout)
            for b in model.conv
        ],
        "init": model.init,
        "loss": model.loss,
        "weight_decay": config.train.weight_decay,
        "dtype": np.dtype(dtype if dtype is not None else model.dtype),
        "seed": seed,
    }


def build_network(config: Config, seed: int = 0, dtype=None, device: str = "cpu") -> Network:
    """The network a config describes; `dtype` (a name like "float64" or a NumPy dtype) overrides the
    config's training dtype; `device` "cuda" puts it on the GPU (nn/backend.py)."""
    return Network(**network_arguments(config, seed, dtype), xp=array_module(device))


def optimizer_for(config: Config) -> Optimizer:
    """The optimizer train.optimizer names, with the settings it reads."""
    return make_optimizer(**dataclasses.asdict(config.train.optimizer))


def learning_rate_at(config: Config, t: float) -> float:
    """train.schedule's learning rate at training time `t`, in epochs (see nn/optimizers.py)."""
    return learning_rate(
        base_lr=config.train.optimizer.lr, epochs=config.train.epochs, t=t, **dataclasses.asdict(config.train.schedule)
    )


def maps(config: Config) -> list[tuple[int, int, int]]:
    """(H, W, C) of the input image and of the maps each conv block leaves, after its pooling."""
    return conv_shapes(config.model.input_shape, config.model.conv)


def dense_widths(config: Config) -> list[int]:
    """The dense layers' widths: the flattened maps of the last conv block (or the pixels), the hidden
    sizes, the classes."""
    height, width, channels = maps(config)[-1]
    first = height * width * channels if config.model.conv else config.model.input_size
    return [first, *config.layer_sizes[1:]]


def weight_count(config: Config) -> int:
    """How many weights (W1, W2, ...) the network has: a lower bound of what its model file holds."""
    count = sum(b.kernel * b.kernel * c * b.filters for b, (_, _, c) in zip(config.model.conv, maps(config)))
    sizes = dense_widths(config)
    return count + sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def flops_per_sample(config: Config) -> int:
    """Floating-point operations of one forward pass per sample: 2 per multiply-add of every convolution
    and dense product (activations, pooling and the loss are not counted)."""
    flops = 0
    for block, (h_in, w_in, c_in) in zip(config.model.conv, maps(config)):
        positions = output_size(h_in, block.kernel, block.stride, block.pad) * output_size(
            w_in, block.kernel, block.stride, block.pad
        )
        flops += 2 * positions * block.kernel * block.kernel * c_in * block.filters
    sizes = dense_widths(config)
    return flops + sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def check_shapes(config: Config) -> None:
    """input_size must equal C*H*W, and every conv block must fit the maps the one before leaves."""
    model = config.model
    channels, height, width = model.input_shape
    if channels * height * width != model.input_size:
        raise ConfigError(
            f"'model.input_shape' is {model.input_shape} ({channels * height * width} values per row) "
            f"but 'model.input_size' is {model.input_size}; they must agree (784 = 1 x 28 x 28)"
        )
    # maps()[i] is what block i receives; the blocks before it were checked on earlier rounds
    for i, (block, (height, width, _)) in enumerate(zip(model.conv, maps(config))):
        before = "the input (model.input_shape)" if i == 0 else f"model.conv[{i - 1}]"
        padded_h, padded_w = height + 2 * block.pad, width + 2 * block.pad
        if block.kernel > padded_h or block.kernel > padded_w:
            raise ConfigError(
                f"model.conv[{i}]: a {block.kernel}x{block.kernel} kernel does not fit the "
                f"{height}x{width} maps left by {before}" + (f" (padded to {padded_h}x{padded_w})" if block.pad else "")
            )
        if block.pad >= block.kernel:
            raise ConfigError(
                f"'model.conv[{i}].pad' is {block.pad}; expected less than the kernel size {block.kernel}"
            )
        height, width = (
            output_size(height, block.kernel, block.stride, block.pad),
            output_size(width, block.kernel, block.stride, block.pad),
        )
        if block.pool > 1 and (block.pool > height or block.pool > width):
            raise ConfigError(
                f"model.conv[{i}]: a {block.pool}x{block.pool} pool does not fit the "
                f"{height}x{width} maps left by its convolution"
            )
