"""Work side by side in processes of this machine: the one runner that `fit --seeds --jobs` (ensemble
members) and `tune --jobs` (trial workers) share, and the one place that handles a Ctrl-C for them.

Each job is a call `task(send, **kwargs)` in a process of its own (started by "spawn": no fork of a
process with BLAS threads running). `send(message)` passes a message to the parent, which hands it to
`on_message(number, message)` as it arrives; what `task` returns reaches the parent as the job's result.
Every process has a pipe of its own to the parent: no lock is shared between workers, so a killed one
cannot leave another stuck.

How a job ends, as the parent sees it, and what `run()` then does:
  * it returned: its result is kept;
  * it raised Interrupted or KeyboardInterrupt (a Ctrl-C): the others are stopped too, and run() raises
    Interrupted naming the jobs stopped part way and those never started;
  * it raised a BPTrainError (bad input found late), or MemoryError: the others are stopped, and run()
    raises BPTrainError with that one line;
  * its process ended without a word (killed, say by the kernel for want of memory): likewise, naming its
    exit code; any other exception is a bug, raised as RuntimeError with the worker's traceback.

Stopping means a Ctrl-C for each worker still running: a Ctrl-C pressed at the terminal reaches every
process of its group, so the parent first gives the workers a moment to report on their own, then sends
SIGINT itself (needed when only the parent was interrupted, e.g. by `timeout -s INT`), again every few
seconds, since a worker still starting up ignores it. It waits until every worker has said what it kept.

Why not concurrent.futures or joblib: both stop the other workers with SIGTERM when one dies (a member
would lose its epoch under way instead of ending it cleanly), neither says which process died or with
what exit code, and neither offers a public way to pass a Ctrl-C on to its workers.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
import traceback

from ..errors import BPTrainError, Interrupted

POLL_SECONDS = 0.5  # how long the parent waits for word from the workers before looking again
GRACE_SECONDS = 2.0  # a worker the terminal's Ctrl-C reached reports within this; the others are told
RESEND_SECONDS = 5.0  # a worker still starting ignores Ctrl-C; the parent repeats it until it is heard
OUT_OF_MEMORY = "out of memory: use fewer --jobs, a smaller network or a smaller batch"


def _work(pipe, number: int, task, kwargs: dict) -> None:
    """A worker process: run `task`, then send its outcome as the last message."""
    # Started with Ctrl-C ignored (see Workers.start), so that one landing while Python starts up cannot
    # end the worker with a traceback; from here on it is a KeyboardInterrupt the task may handle.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        outcome = _outcome(pipe, number, task, kwargs)
    except KeyboardInterrupt:  # pressed again while the first was being handled
        outcome = ("interrupted", number, "")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the outcome must get through
    try:
        pipe.send(outcome)
    except OSError:  # the parent is gone (killed): nobody is left to tell
        pass


def _outcome(pipe, number: int, task, kwargs: dict) -> tuple[str, int, object]:
    try:
        # tqdm's default lock is a named semaphore shared across processes, which a killed worker would
        # leave behind (and Python would warn of at exit); workers draw no bars, a thread lock will do.
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())
        return "done", number, task(lambda message: pipe.send(("message", number, message)), **kwargs)
    except (Interrupted, KeyboardInterrupt) as exc:
        return "interrupted", number, str(exc)
    except BPTrainError as exc:
        return "error", number, str(exc)
    except MemoryError:
        return "error", number, OUT_OF_MEMORY
    except Exception:  # a bug: the parent shows the whole traceback
        return "crash", number, traceback.format_exc()


class Workers:
    """Run `jobs` ({number: keyword arguments of `task`}) at most `at_once` at a time; `names` says what
    each job is in messages ({number: 'seed-3'}), `noun` what kind of job ('member'), and `kept` what a
    job stopped part way keeps. `on_message(number, message)` receives what the jobs send. `run()` returns
    {number: result} once every job has finished, or raises as the module says."""

    def __init__(
        self,
        task,
        jobs: dict[int, dict],
        at_once: int,
        names: dict[int, str],
        on_message,
        noun: str = "job",
        kept: str = "",
    ):
        self.task, self.at_once, self.names, self.on_message = task, at_once, names, on_message
        self.noun, self.kept = noun, kept
        self.waiting = dict(sorted(jobs.items()))
        self.context = multiprocessing.get_context("spawn")
        self.running: dict[int, tuple] = {}  # number -> (process, pipe)
        self.results: dict[int, object] = {}
        self.interrupted: dict[int, str] = {}  # number -> what the job said; 0 is the parent itself
        self.failure: tuple[str, int, str] | None = None

    def run(self) -> dict[int, object]:
        try:
            while (self.running or self.waiting) and not self.stopping:
                while self.waiting and len(self.running) < self.at_once:
                    number = next(iter(self.waiting))
                    self.running[number] = self.start(number, self.waiting.pop(number))
                self.receive()
            self.stop_all()
        except KeyboardInterrupt:
            self.interrupted.setdefault(0, "")
            self.stop_all()
        return self.outcome()

    def start(self, number: int, kwargs: dict):
        """(process, the end of its pipe the parent reads)."""
        reader, writer = self.context.Pipe(duplex=False)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the new process
        try:
            process = self.context.Process(target=_work, args=(writer, number, self.task, kwargs), daemon=True)
            process.start()
        finally:
            signal.signal(signal.SIGINT, previous)
        writer.close()  # the worker's end only: when the worker ends, the parent reads the end of the pipe
        return process, reader

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
            if kind == "message":
                self.on_message(number, payload)
                continue
            process, _ = self.running.pop(number)
            process.join()
            pipe.close()
            if kind == "done":
                self.results[number] = payload
            elif kind == "interrupted":
                self.interrupted[number] = payload
            elif self.failure is None:
                if kind == "killed":
                    payload = (
                        f"its process ended (exit code {process.exitcode}) before finishing: killed, "
                        "perhaps for want of memory"
                    )
                self.failure = (kind, number, payload)

    def stop_all(self) -> None:
        """Interrupt the workers still running and wait until each has said what it kept."""
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

    def outcome(self) -> dict[int, object]:
        """The results; or the first failure, or Interrupted naming the jobs stopped part way."""
        if self.failure is not None:
            kind, number, text = self.failure
            if kind == "crash":
                raise RuntimeError(f"{self.noun} {self.names[number]} failed:\n{text}")
            raise BPTrainError(text if kind == "error" else f"{self.noun} {self.names[number]}: {text}")
        if self.interrupted:
            part_way = [self.names[n] for n in sorted(self.interrupted) if n]
            not_started = [self.names[n] for n in self.waiting]
            raise Interrupted(
                f"interrupted: {' and '.join(part_way) or f'no {self.noun}'} stopped part way{self.kept}"
                + (f"; {' and '.join(not_started)} not started" if not_started else "")
            )
        return self.results
