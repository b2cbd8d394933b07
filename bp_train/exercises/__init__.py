"""Exercises: write a layer's backward pass yourself, and have it checked as bp-train checks its own.

catalog.py lists them (the gates, the activations, Affine, SoftmaxWithLoss, Dropout, BatchNorm,
Convolution, Pooling); template.py writes a layer's file with its backward left blank, or solved;
check.py runs a student's class through a hand-worked example and gradcheck, in a process of its own.
"""
