"""Training an ensemble: one config, several seeds, one run folder per member (files/ensemble.py).

`fit --seeds 0,1,2` trains the members one after another into runs/<name>-ensemble/seed-0/, seed-1/, ...
Each member is an ordinary run, so it is written, locked, checkpointed and resumed as any run is: a
Ctrl-C costs at most the epoch under way of the member under way. `fit --resume ENSEMBLE` finishes
whatever is left -- members stopped half way are resumed, members never started are trained, finished
ones are left alone -- and `fit --resume ENSEMBLE/seed-1` resumes that member alone. `fit --resume ENSEMBLE
--seeds 4,5` adds members 4 and 5 (seeds it holds already are left as they are).
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

from ..config import Config, config_from_dict
from ..errors import BPTrainError, Interrupted
from ..files.ensemble import (
    MANIFEST,
    MAX_MEMBERS,
    is_ensemble,
    member_name,
    read_manifest,
    run_progress,
    write_manifest,
)
from .checkpoint import resume_config, resumed
from .runfolder import FolderLock, claim_out, member_run_folder, numbered_folder
from .trainer import fit as fit_run


def member_config(config: Config, seed: int) -> Config:
    raw = copy.deepcopy(config.to_dict())
    raw["train"]["seed"] = seed
    return config_from_dict(raw, f"{config.name} (seed {seed})", name=config.name)


def claim_ensemble_folder(out: str | None, name: str, overwrite: bool, runs: Path = Path("runs")):
    """(folder, lock) for a new ensemble: runs/<name>-ensemble (then -2, -3...), or --out, which may be
    new, empty, or an ensemble folder that --overwrite retrains."""
    if out is None:
        claimed = numbered_folder(runs / f"{name}-ensemble")
        return claimed.target, claimed.lock
    target = Path(out)
    claimed = claim_out(target)
    if claimed is not None:
        return claimed.target, claimed.lock
    if not is_ensemble(target):
        raise BPTrainError(
            f"--out {target} holds something that is not an ensemble ({MANIFEST} is missing); "
            "--seeds writes a new or empty folder, or an ensemble folder"
        )
    lock = FolderLock(target).acquire()
    if not overwrite:
        lock.release()
        raise BPTrainError(
            f"--out {target} already holds an ensemble; pass --overwrite to retrain its members "
            f"(each replaced once its new run has finished an epoch), or --resume {target} to "
            "finish it"
        )
    return target, lock


def member_plan(config: Config, seed: int, folder: Path, resume: bool) -> tuple[str, Config | None, bool]:
    """What member `seed` needs: ('finished already', None, False), ('<why>, to resume', its config, True)
    or ('to train', its config, False)."""
    member, wanted = folder / member_name(seed), member_config(config, seed)
    if resume and (member / "checkpoint.npz").is_file():
        wanted = resume_config(member, wanted)
        # Against the epochs asked for now, not those it was planned with: --epochs 45 trains a finished
        # 30-epoch member on, as `fit --resume` does a single run.
        done, _, stopped_early = run_progress(member)
        if stopped_early or done >= wanted.train.epochs:
            return "finished already", None, False
        return f"stopped after epoch {done} of {wanted.train.epochs}, to resume", wanted, True
    return "to train", wanted, False


def train_members(
    config: Config,
    seeds: list[int],
    folder: Path,
    overwrite: bool = False,
    resume: bool = False,
    cache: bool = True,
    show_progress: bool = True,
    log=print,
    jobs: int = 1,
    threads: int = 1,
) -> dict:
    """Train (or finish) every member, in turn or `jobs` at a time (machine/workers.py, each with `threads`
    BLAS threads); the summary holds each member's figures and their spread."""
    started, summaries, todo = time.perf_counter(), {}, {}
    for number, seed in enumerate(seeds, start=1):
        member = folder / member_name(seed)
        what, wanted, resuming = member_plan(config, seed, folder, resume)
        log(f"member {number}/{len(seeds)} ({member.name}): {what}")
        if wanted is None:
            summaries[number] = finished_summary(member)
        else:
            todo[number] = (member, wanted, resuming)
    if jobs > 1 and len(todo) > 1:
        summaries.update(
            train_side_by_side(config.name, todo, folder, overwrite, cache, show_progress, log, jobs, threads)
        )
    else:
        for number, (member, wanted, resuming) in todo.items():
            summaries[number] = train_in_turn(member, wanted, resuming, folder, overwrite, cache, show_progress, log)
    return ensemble_summary(folder, seeds, [summaries[n] for n in sorted(summaries)], time.perf_counter() - started)


def train_in_turn(
    member: Path, wanted: Config, resuming: bool, folder: Path, overwrite: bool, cache: bool, show_progress: bool, log
) -> dict:
    """One member, in this process."""
    run = member_run_folder(member, wanted.name, resuming, overwrite)
    try:
        with run:
            return fit_run(wanted, run, resume=resuming, cache=cache, show_progress=show_progress, log=log)
    except Interrupted as exc:
        raise Interrupted(
            f"{exc} (member {member.name}); to finish the whole ensemble: bp-train fit --resume {folder}"
        ) from None


def train_side_by_side(
    name: str, todo: dict, folder: Path, overwrite: bool, cache: bool, show_progress: bool, log, jobs: int, threads: int
) -> dict[int, dict]:
    """The members of `todo` {number: (folder, config, resuming)}, `jobs` at a time, each in a process of
    its own (machine/workers.py) with `threads` BLAS threads, under one progress bar counting their epochs.
    Much of an epoch is not matrix products (im2col, pooling, the optimizer, augmentation run on one core),
    so on two cores two members side by side finish sooner than in turn (measured in docs/kaggle.md)."""
    from tqdm import tqdm

    from ..machine.workers import Workers

    epochs = sum(
        wanted.train.epochs - (run_progress(member)[0] if resuming else 0) for member, wanted, resuming in todo.values()
    )
    work = {
        number: {
            "raw_config": wanted.to_dict(),
            "name": name,
            "member": str(member),
            "resuming": resuming,
            "overwrite": overwrite,
            "cache": cache,
            "threads": threads,
        }
        for number, (member, wanted, resuming) in todo.items()
    }
    names = {number: member.name for number, (member, _, _) in todo.items()}
    with tqdm(
        total=epochs,
        unit="epoch",
        desc=f"{min(jobs, len(todo))} members at a time",
        leave=False,
        disable=not show_progress,
        dynamic_ncols=True,
    ) as bar:

        def on_message(number, message):
            kind, line = message
            if kind == "epoch":
                bar.update(1)
            else:
                with tqdm.external_write_mode():
                    log(f"{names[number]}: {line}")

        workers = Workers(
            train_member,
            work,
            jobs,
            names,
            on_message,
            noun="member",
            kept=", keeping the checkpoint of each one's last finished epoch",
        )
        try:
            return workers.run()
        except Interrupted as exc:
            raise Interrupted(f"{exc}; to finish the whole ensemble: bp-train fit --resume {folder}") from None


def train_member(
    send, raw_config: dict, name: str, member: str, resuming: bool, overwrite: bool, cache: bool, threads: int
) -> dict:
    """One member in a worker process: its lines and finished epochs go to the parent through `send`."""
    from ..machine.threads import blas_threads

    config = config_from_dict(raw_config, f"{member} (its config)", name=name)
    run = member_run_folder(Path(member), name, resuming, overwrite)
    with blas_threads(threads), run:
        return fit_run(
            config,
            run,
            resume=resuming,
            cache=cache,
            show_progress=False,
            log=lambda line: send(("log", line)),
            on_epoch=lambda row: send(("epoch", None)),
        )


def finished_summary(member: Path) -> dict:
    """The figures of a member trained earlier, read from its metrics.csv."""
    import csv

    rows = list(csv.DictReader((member / "metrics.csv").read_text(encoding="utf-8").splitlines()))
    val = [float(r["val_accuracy"]) for r in rows if r.get("val_accuracy")]
    seconds = round(sum(float(r["seconds"]) for r in rows), 3)
    return {
        "run_dir": str(member),
        "model": str(member / "model.npz"),
        "epochs": len(rows),
        "val_accuracy": max(val) if val else None,
        "train_seconds": seconds,
        "seconds": seconds,
    }


def ensemble_summary(folder: Path, seeds: list[int], summaries: list[dict], seconds: float) -> dict:
    val = [s["val_accuracy"] for s in summaries if s.get("val_accuracy") is not None]
    return {
        "ensemble": str(folder),
        "members": [{"seed": seed, **s} for seed, s in zip(seeds, summaries)],
        "val_accuracy_mean": statistics.mean(val) if val else None,
        "val_accuracy_std": statistics.stdev(val) if len(val) > 1 else None,
        "train_seconds": round(sum(s["train_seconds"] for s in summaries), 3),
        "seconds": round(seconds, 3),
    }


def fit_ensemble(
    config: Config,
    seeds: list[int] | None,
    out: str | None = None,
    overwrite: bool = False,
    resume: str | None = None,
    cache: bool = True,
    show_progress: bool = True,
    log=print,
    threads: str = "",
    jobs: int = 1,
    threads_per_job: int = 1,
) -> dict:
    """`fit --seeds` (a new ensemble, or --overwrite of one) or `fit --resume ENSEMBLE` (finish it, where
    `config` may differ from the manifest's only as a resumed run's may: epochs, early stopping, device;
    `seeds` given with it are added as new members, the way to grow an ensemble later).
    `threads` describes the command's BLAS threads; with `jobs` > 1 each job has `threads_per_job`."""
    if resume is not None:
        folder = Path(resume)
        manifest = read_manifest(folder)
        members = [int(name.split("-", 1)[1]) for name in manifest["members"]]
        seeds = members + [seed for seed in seeds or [] if seed not in members]
        if len(seeds) > MAX_MEMBERS:
            raise BPTrainError(
                f"--seeds: {folder} has {len(members)} members; adding "
                f"{len(seeds) - len(members)} would make more than {MAX_MEMBERS}"
            )
        saved = config_from_dict(manifest["config"], f"{folder / MANIFEST} (its config)")
        config = resumed(saved, config, str(folder))
        lock = FolderLock(folder).acquire()
    else:
        folder, lock = claim_ensemble_folder(out, config.name, overwrite)
    try:
        write_manifest(folder, seeds, config.to_dict())
        how = f"; {threads}" if threads else ""
        if jobs > 1:
            how = f"; {jobs} trained at a time, {threads_per_job} BLAS thread{'s' if threads_per_job > 1 else ''} each"
        log(
            f"training the ensemble {folder} of {config.name}: {len(seeds)} members "
            f"(seeds {', '.join(map(str, seeds))}){how}"
        )
        return train_members(
            config, seeds, folder, overwrite, resume is not None, cache, show_progress, log, jobs, threads_per_job
        )
    finally:
        lock.release()
