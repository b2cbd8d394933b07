"""A search as the `tune` command runs it: the study opened, its trials run here or in worker processes,
each ended trial reported, and the results written (trials.csv, best.yaml, the plots). study.py holds
the single steps; this file puts them in order, so that the command line only parses and hands over.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..config import Config
from ..errors import BPTrainError, Interrupted
from ..training.runfolder import is_run
from . import storage as storages
from . import study as engine


class Search:
    """One `tune` invocation: `budget` trials in all for the study `name` (a journal file in its folder, or
    the database `storage`), none started after `timeout` seconds."""

    def __init__(
        self,
        config: Config,
        name: str,
        storage: str | None,
        budget: int,
        timeout: float | None,
        threads: int,
        log=print,
    ):
        self.config = config
        self.name, self.storage, self.budget, self.timeout, self.threads = name, storage, budget, timeout, threads
        self.log = log
        self.deadline = time.monotonic() + timeout if timeout else None
        self.folder = engine.study_folder(name)
        run = self.folder.parent
        if is_run(run):
            raise BPTrainError(
                f"{run} holds a fit run; a study named {name} would write its trials into it "
                "(runs/STUDY/tune/): give --study another name"
            )
        engine.require_optuna()
        storages.check_study_folder(self.folder, storage)
        self.study = engine.open_study(config, name, storages.open_storage(storage, self.folder))
        storages.record_storage(self.folder, storage)

    def run(self, jobs: int, quiet: bool) -> None:
        """Run what is left of the budget with `jobs` processes, reporting each ended trial, then write
        the results; a Ctrl-C keeps every ended trial and writes the results so far."""
        if self.storage and self.storage.startswith("sqlite") and jobs > 1:
            print(
                "warning: SQLite is not meant for parallel writers (Optuna says so); use PostgreSQL or MySQL "
                "for --jobs > 1, or the default journal file",
                file=sys.stderr,
            )
        used = engine.budget_used(self.study.get_trials(deepcopy=False))
        self.log(
            f"study {self.name}: {used} of {self.budget} trials done; {self.config.tune.metric} decides; "
            f"folder {self.folder}"
        )
        bar = tqdm(
            total=self.budget,
            initial=min(used, self.budget),
            unit="trial",
            disable=quiet or used >= self.budget,
            dynamic_ncols=True,
            leave=False,
        )
        seen = {t.number for t in engine.finished(self.study)}

        def report(trial):
            if trial.number not in seen:
                seen.add(trial.number)
                bar.update(1)
                tqdm.write(engine.describe(trial, self.config.tune.metric))

        try:
            if used < self.budget:
                if jobs == 1:
                    self.run_here(0, on_done=report)
                else:
                    self.run_workers(jobs, max(1, self.threads // jobs), report)
        except (KeyboardInterrupt, Interrupted):
            bar.close()
            self.write_results(quiet=True)
            raise Interrupted(
                f"tune interrupted: the {len(engine.finished(self.study))} ended trials are kept in "
                f"study {self.name} (a running one is marked failed); run the same command again to "
                "continue"
            ) from None
        bar.close()
        self.write_results()

    def run_here(self, worker_index: int, on_done=None) -> None:
        """Run trials in this process: the training CSV is read once and shared by all its trials."""
        from ..training.trainer import training_digits

        self.study.sampler = engine.sampler_for(self.config, self.study, worker_index, self.storage is not None)
        engine.run_worker(
            self.study,
            self.config,
            training_digits(self.config),
            self.budget,
            self.folder,
            self.deadline,
            on_done=on_done,
        )

    def run_workers(self, jobs: int, threads: int, report) -> None:
        """Run `jobs` worker processes on the study (machine/workers.py, the runner `fit --jobs` uses too),
        each with `threads` BLAS threads, and report each trial as a worker says it ended. A Ctrl-C stops
        every worker: each marks its running trial failed and says so before the command ends."""
        from ..machine.workers import Workers

        work = {
            number: {
                "raw_config": self.config.to_dict(),
                "config_name": self.config.name,
                "name": self.name,
                "storage": self.storage,
                "budget": self.budget,
                "timeout": self.timeout,
                "threads": threads,
                "index": number - 1,
            }
            for number in range(1, jobs + 1)
        }

        def on_message(number, message):
            for trial in engine.finished(self.study):
                report(trial)

        names = {number: str(number) for number in work}
        Workers(run_trials, work, jobs, names, on_message, noun="tune worker").run()
        for trial in engine.finished(self.study):
            report(trial)

    def write_results(self, quiet: bool = False) -> list[Path]:
        """trials.csv, best.yaml (when a trial completed) and the plots; with the best trials printed."""
        metric, study, folder = self.config.tune.metric, self.study, self.folder
        folder.mkdir(parents=True, exist_ok=True)  # a machine whose workers found no trial left still reports
        written = [engine.write_trials_csv(study, folder, metric)]
        best = engine.write_best(study, folder, metric)
        if best is not None:
            written.append(best)
        trials = [
            {
                "number": t.number,
                "outcome": t.user_attrs.get("outcome"),
                "value": engine.trial_value(t),
                "params": t.params,
            }
            for t in engine.finished(study)
        ]
        log_params = {k for k, d in self.config.tune.space.items() if next(iter(d)) in ("log_uniform", "log_int")}
        try:
            from ..views.plots import tune_plots

            written += tune_plots(trials, metric, log_params, folder)
        except BPTrainError as exc:  # matplotlib missing: the table and the files still matter
            print(f"no plots: {exc}", file=sys.stderr)
        if not quiet:
            if best is None:
                self.log("no trial completed, so there is no best.yaml; see trials.csv for what happened")
            else:
                self.log(engine.results_table(study, metric))
            self.log("wrote " + ", ".join(str(p) for p in written))
        return written


def run_trials(
    send,
    raw_config: dict,
    config_name: str,
    name: str,
    storage: str | None,
    budget: int,
    timeout: float | None,
    threads: int,
    index: int,
) -> None:
    """One worker process of `tune --jobs`: trials of the study until its budget is used, each one's end
    told to the parent through `send`."""
    from ..config import config_from_dict
    from ..machine.threads import blas_threads

    config = config_from_dict(raw_config, f"study {name} (its config)", name=config_name)
    with blas_threads(threads):
        search = Search(config, name, storage, budget, timeout, threads, log=lambda line: None)
        search.run_here(index, on_done=lambda trial: send(trial.number))
