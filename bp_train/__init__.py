"""bp-train: a handwritten-digit recognizer whose network is written from scratch in NumPy.

The lesson -- the layers, backpropagation, the network, the optimizers, numerical gradients -- is the
folder bp_train/nn/, and its __init__ gives the order to read it in. Everything else is the tool around
it: cli/ (the `bp-train` command), config/ (YAML experiments), data/, training/, files/, tune/, views/,
machine/.

Python API, from a config (the CLI uses the same functions):

    import bp_train
    config = bp_train.load_config("configs/default.yaml")
    net = bp_train.build_network(config, seed=0, dtype="float64")
    grads = net.gradient(x, t)            # backpropagation
    check = net.numerical_gradient(x, t)  # central differences, the slow oracle
"""

import importlib

__version__ = "0.1.0"
__all__ = ["BPTrainError", "Config", "Network", "build_network", "load_config", "__version__"]
# Imported on first use, so that `import bp_train` (and the `bp-train` launcher) costs nothing before the
# launcher can catch a Ctrl-C (see launch.py).
_HOME = {
    "Config": "config",
    "load_config": "config",
    "BPTrainError": "errors",
    "Network": "nn.network",
    "build_network": "config",
}


def __getattr__(name):
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'bp_train' has no attribute {name!r}")
