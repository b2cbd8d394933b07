"""Digit data: the Kaggle CSV (digits.py), which rows a model was trained on (fingerprints.py), MNIST's IDX files (mnist.py), distorted training digits (augment.py)."""
