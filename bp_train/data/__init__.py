"""Digit data: the Kaggle CSV (digits.py), MNIST's IDX files (mnist.py), distorted training digits (augment.py)."""
