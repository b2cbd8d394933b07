"""Files on disk that are never half-written: atomic writes and safe .npz archives (store.py), model files (model.py)."""
