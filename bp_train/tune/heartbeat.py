"""The one place bp-train reaches into Optuna's private API: the heartbeat of a running trial.

`Study.optimize` keeps a heartbeat for each trial it runs, so that a database study can tell a trial whose
worker was killed (its heartbeat stops; `fail_stale_trials` then fails it) from one still running. The
ask/tell loop bp-train runs (study.py) gets none from Optuna's public API, so it starts the same thread
Optuna's own loop starts. Private names can change in any release: pyproject.toml pins Optuna to the
versions this was tested with (4.2 to 5.1), and the heartbeat test in tests/test_tune.py fails if they do.
"""

from __future__ import annotations


def trial_heartbeat(study, trial):
    """A context manager that beats for `trial` while it is open (a no-op for storages without one)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, study._storage)
