"""Training ensemble members side by side, each in a process of its own: `fit --seeds ... --jobs N`.

Why processes and not more BLAS threads: much of a member's epoch is not matrix products. Copying patches
into columns, pooling, the optimizer's step and the augmentation run on one core however many threads
BLAS has, so on two cores two members with one BLAS thread each finish sooner than the same two members
one after another with two threads each (measured in the README). The BLAS threads are shared out: each
job gets the command's thread count divided by the jobs, at least one.

Each worker trains exactly what `fit --seeds` trains in turn: the same run folder, lock, checkpoints and
figures (members.py decides what each member needs). What a worker logs reaches the parent through a pipe
of its own (no lock shared between workers that a killed one could hold) and is printed there, named by
member. A Ctrl-C reaches every process of the terminal: each worker keeps its member's last checkpoint
and says so, the parent waits for them all, then tells how to resume. If only the parent is interrupted,
it passes the interrupt on. A member that fails, or whose process is killed, stops the others the same way.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback
from pathlib import Path

from ..errors import BPTrainError, Interrupted

POLL_SECONDS = 0.5  # how long the parent waits for word from the workers before looking again
GRACE_SECONDS = 2.0  # a worker the terminal's Ctrl-C reached reports within this; the others are told
RESEND_SECONDS = 5.0  # a worker still starting ignores Ctrl-C; the parent repeats it until it is heard


def _train_one(messages, number: int, **job) -> None:
    """The worker: train one member, send each line and then the outcome down `messages` (a pipe)."""
    # Started with Ctrl-C ignored (see start_worker), so that one landing while Python starts up cannot
    # end the worker with a traceback; from here on it is a KeyboardInterrupt the trainer handles.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        outcome = _training_outcome(messages, number, **job)
    except KeyboardInterrupt:  # pressed again while the first was being handled
        outcome = ("interrupted", number, "")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the outcome must get through
    try:
        messages.send(outcome)
    except OSError:  # the parent is gone (killed): nobody is left to tell
        pass


def _training_outcome(
    messages,
    number: int,
    raw_config: dict,
    name: str,
    member: str,
    resuming: bool,
    overwrite: bool,
    cache: bool,
    threads: int,
) -> tuple[str, int, object]:
    try:
        from tqdm import tqdm

        from ..config import config_from_dict
        from ..machine.threads import blas_threads
        from .runfolder import member_run_folder
        from .trainer import fit

        # tqdm's default lock is a named semaphore shared across processes, which a killed worker would
        # leave behind (and Python would warn of at exit); the worker draws no bars, a thread lock will do.
        tqdm.set_lock(threading.RLock())
        config = config_from_dict(raw_config, f"{member} (its config)", name=name)
        run = member_run_folder(Path(member), name, resuming, overwrite)
        with blas_threads(threads), run:
            summary = fit(
                config,
                run,
                resume=resuming,
                cache=cache,
                show_progress=False,
                log=lambda line: messages.send(("log", number, line)),
                on_epoch=lambda row: messages.send(("epoch", number, None)),
            )
        return "done", number, summary
    except (Interrupted, KeyboardInterrupt) as exc:
        return "interrupted", number, str(exc)
    except BPTrainError as exc:
        return "error", number, str(exc)
    except MemoryError:
        return "error", number, "out of memory: use fewer --jobs, a smaller network or a smaller batch"
    except Exception:  # a bug: the parent shows the whole traceback
        return "crash", number, traceback.format_exc()


def start_worker(context, number: int, job: dict):
    """(process, the end of its pipe the parent reads)."""
    reader, writer = context.Pipe(duplex=False)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the new process
    try:
        process = context.Process(target=_train_one, args=(writer, number), kwargs=job, daemon=True)
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    writer.close()  # the worker's end only: when the worker ends, the parent reads the end of the pipe
    return process, reader


class SideBySide:
    """Run `jobs` (keyword arguments of _train_one, keyed by member number) at most `at_once` at a time.

    `log(number, line)` prints a worker's line; `epoch_done()` advances a progress bar. `run()` returns
    {number: summary} once every member has finished, or raises the first failure once all have stopped."""

    def __init__(self, jobs: dict[int, dict], at_once: int, log, epoch_done):
        self.waiting = dict(sorted(jobs.items()))
        self.names = {number: Path(job["member"]).name for number, job in jobs.items()}
        self.at_once, self.log, self.epoch_done = at_once, log, epoch_done
        self.context = multiprocessing.get_context("spawn")  # no fork of a process with BLAS threads running
        self.running: dict[int, tuple] = {}  # number -> (process, pipe)
        self.summaries: dict[int, dict] = {}
        self.interrupted: dict[int, str] = {}
        self.failure: tuple[str, int, str] | None = None

    def run(self) -> dict[int, dict]:
        try:
            while (self.running or self.waiting) and not self.stopping:
                while self.waiting and len(self.running) < self.at_once:
                    number = next(iter(self.waiting))
                    self.running[number] = start_worker(self.context, number, self.waiting.pop(number))
                self.receive()
            self.stop_all()
        except KeyboardInterrupt:
            self.interrupted.setdefault(0, "")
            self.stop_all()
        return self.outcome()

    @property
    def stopping(self) -> bool:
        return self.failure is not None or bool(self.interrupted)

    def receive(self, timeout: float = POLL_SECONDS) -> None:
        """Handle what the workers have sent within `timeout`, and the end of any that ended."""
        pipes = {pipe: number for number, (_, pipe) in self.running.items()}
        for pipe in multiprocessing.connection.wait(list(pipes), timeout):
            number = pipes[pipe]
            try:
                kind, _, payload = pipe.recv()
            except (EOFError, OSError):  # it ended without a last word: killed
                kind, payload = "killed", None
            if kind == "log":
                self.log(number, payload)
                continue
            if kind == "epoch":
                self.epoch_done()
                continue
            process, _ = self.running.pop(number)
            process.join()
            pipe.close()
            if kind == "done":
                self.summaries[number] = payload
            elif kind == "interrupted":
                self.interrupted[number] = payload
            elif self.failure is None:
                self.failure = (
                    kind,
                    number,
                    payload
                    if kind != "killed"
                    else f"its process ended (exit code {process.exitcode}) before finishing: killed, "
                    "perhaps for want of memory",
                )

    def stop_all(self) -> None:
        """Interrupt the workers still running and wait until each has said what it kept. A Ctrl-C at the
        terminal has reached them already, so they are given a moment before it is passed on."""
        sent = time.monotonic() - RESEND_SECONDS + GRACE_SECONDS
        while self.running:
            if time.monotonic() - sent > RESEND_SECONDS:
                for process, _ in self.running.values():
                    if process.is_alive():
                        os.kill(process.pid, signal.SIGINT)
                sent = time.monotonic()
            try:
                self.receive()
            except KeyboardInterrupt:  # pressed again: the workers are stopping already
                continue

    def outcome(self) -> dict[int, dict]:
        """The summaries; or the first failure (a BPTrainError naming the member, a RuntimeError for a bug),
        or Interrupted naming the members stopped part way (number 0 is the parent itself)."""
        if self.failure is not None:
            kind, number, text = self.failure
            if kind == "crash":
                raise RuntimeError(f"member {self.names[number]} failed:\n{text}")
            raise BPTrainError(text if kind == "error" else f"member {self.names[number]}: {text}")
        if self.interrupted:
            part_way = [self.names[n] for n in sorted(self.interrupted) if n]
            not_started = [self.names[n] for n in self.waiting]
            raise Interrupted(
                f"interrupted: {' and '.join(part_way) or 'no member'} stopped part way, keeping "
                "the checkpoint of each one's last finished epoch"
                + (f"; {' and '.join(not_started)} not started" if not_started else "")
            )
        return self.summaries


def member_job(
    raw_config: dict, name: str, member: Path, resuming: bool, overwrite: bool, cache: bool, threads: int
) -> dict:
    """The keyword arguments of one worker (plain values: they travel to another process)."""
    return {
        "raw_config": raw_config,
        "name": name,
        "member": str(member),
        "resuming": resuming,
        "overwrite": overwrite,
        "cache": cache,
        "threads": threads,
    }
