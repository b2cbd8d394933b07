"""Hyper-parameter search on Optuna: the single steps of a study (study.py) and a whole search as `tune` runs it (search.py)."""
