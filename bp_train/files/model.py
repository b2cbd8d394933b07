"""Model files: a trained network's arrays and the config that built it, in one safe .npz (store.py).

Loading checks every array's name, dtype and shape against the network the saved config describes before
reading any array's data, so a foreign, damaged or tampered file is refused with one line and never
builds a half-filled network.
"""

from __future__ import annotations

import numpy as np

from ..config.build import build_network, weight_count
from ..config.loading import config_from_dict
from ..errors import BPTrainError, ModelFileError
from ..nn.backend import to_device, to_host
from .store import MODEL_FORMAT, load_arrays, save_arrays

FINGERPRINT = "train_fingerprint"  # the hashes of the training rows (see data.fingerprints), if saved


def save_model(
    destination, network, config_dict: dict, extra: dict | None = None, fingerprint: np.ndarray | None = None
) -> None:
    meta = {"format": MODEL_FORMAT, "config": config_dict, **(extra or {})}
    arrays = dict(network.state())
    if fingerprint is not None:
        arrays[FINGERPRINT] = fingerprint
    save_arrays(destination, arrays, meta)


def load_model(path, device: str = "cpu"):
    """Rebuild the network saved in a model file, on `device`: (network, config, meta);
    meta["train_fingerprint"] holds the training rows' hashes (or None for a model saved without them).

    Every array's name, dtype and shape is checked against the network the saved config describes before
    any array's data is read; arrays the config does not name are refused."""
    built = {}

    def check(headers, meta):
        try:
            config = config_from_dict(meta["config"], f"{path} (its saved config)")
        except (KeyError, TypeError, AttributeError, ValueError):
            raise ModelFileError(f"{path}: the model file has no valid saved config") from None
        except BPTrainError as exc:
            raise ModelFileError(str(exc)) from None
        stored = sum(int(np.prod(shape)) for name, (shape, _) in headers.items() if name != "meta")
        if weight_count(config) > stored:  # refuse before building a network the file cannot fill
            raise ModelFileError(
                f"{path}: its saved config describes a network of {weight_count(config):,} "
                f"weights, but the file holds {stored:,} values"
            )
        network = build_network(config, seed=0, device=device)
        state = network.state()
        for name, (shape, dtype) in headers.items():
            if name == FINGERPRINT:
                if len(shape) != 1 or dtype != np.uint32:
                    raise ModelFileError(f"{path}: array '{name}' is not a fingerprint (1-D uint32)")
            elif name != "meta" and name not in state:
                raise ModelFileError(
                    f"{path}: array '{name[:60]}' is not part of the network its config describes ({', '.join(state)})"
                )
            elif name in state and (tuple(shape) != state[name].shape or dtype.kind != "f"):
                raise ModelFileError(
                    f"{path}: the arrays do not match the saved config (wrong shape or dtype of "
                    f"{name}: {dtype} {tuple(shape)}, expected {state[name].dtype} "
                    f"{state[name].shape})"
                )
        missing = [key for key in state if key not in headers]
        if missing:
            raise ModelFileError(f"{path}: the arrays do not match the saved config (missing {missing[0]})")
        built.update(network=network, config=config)

    arrays, meta = load_arrays(path, check=check)
    meta[FINGERPRINT] = arrays.pop(FINGERPRINT, None)
    network = built["network"]
    check_values(path, arrays)
    network.load_state(arrays)
    check_probes(path, network)
    return network, built["config"], meta


def check_values(path, arrays: dict) -> None:
    """BatchNorm's variances are never negative: the square root of one is NaN, which would read every
    digit as 0."""
    for name, values in arrays.items():  # (NaN and infinities are refused as the file is read: store.py)
        if name.startswith("running_var") and (values < 0).any():
            raise ModelFileError(f"{path}: array '{name}' holds a negative variance; a variance is never below 0")


def check_probes(path, network) -> None:
    """Finite weights can still overflow: three plain digits (blank, all ink, half grey) through the
    network must give finite scores."""
    probes = np.stack([np.full(network.sizes[0], value, dtype=network.dtype) for value in (0.0, 1.0, 0.5)])
    with np.errstate(all="ignore"):
        scores = to_host(network.predict(to_device(probes, network.xp)))
    if not np.isfinite(scores).all():
        raise ModelFileError(
            f"{path}: its network gives NaN or infinite scores for a plain digit (weights that overflow "
            f"{network.dtype}?); no trained network does"
        )
