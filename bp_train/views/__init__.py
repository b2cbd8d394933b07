"""Pictures: plots of runs, activations and searches (plots.py); textbook computational graphs worked forward and backward (explain.py)."""
