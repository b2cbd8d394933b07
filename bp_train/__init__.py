"""bp-train: a handwritten-digit recognizer whose network is written from scratch in NumPy.

Python API (the CLI uses the same functions):

    import bp_train
    config = bp_train.load_config("configs/default.yaml")
    net = bp_train.build_network(config, seed=0, dtype="float64")
    grads = net.gradient(x, t)            # backpropagation
    check = net.numerical_gradient(x, t)  # central differences, the slow oracle
"""

from .config import Config, load_config
from .errors import BPTrainError
from .network import Network, build_network

__version__ = "0.1.0"
__all__ = ["BPTrainError", "Config", "Network", "build_network", "load_config", "__version__"]
