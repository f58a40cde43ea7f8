"""A sweep's progress: one line per finished job, with the jobs left and an estimate of the time.

Each job appends one word (``done`` or ``failed``) to a file in the sweep's folder when it
ends; the sweeper reads that file from a thread and prints::

    [sweep 20261201-023504-d3dd35] 7/54 jobs done, 1 failed, 0:00:12 elapsed, about 0:01:20 left

A file, not the tracking store or the launcher, because it works the same for every
launcher: jobs in the sweeper's own process (basic), in worker processes (joblib), or on
other machines sharing the folder (SLURM). The sweeper also reports what each returned
batch says, so a job that died before writing its word is counted all the same.
The time left is the mean time per finished job so far times the jobs left (jobs in
parallel finish faster, and the mean sees that).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

DONE, FAILED = "done", "failed"


def progress_file(sweep_dir: str | Path, sweep_id: str) -> Path:
    """Where the jobs of sweep ``sweep_id`` record that they ended."""
    return Path(sweep_dir) / f".progress-{sweep_id}"


@contextlib.contextmanager
def reporting(path: str | Path | None) -> Iterator[None]:
    """Record in ``path`` (if given) that the job in this block ended: ``done``, or ``failed``
    when it raised. An interrupt records nothing: the sweep is stopping."""
    try:
        yield
    except Exception:
        _append(path, FAILED)
        raise
    _append(path, DONE)


def _append(path: str | Path | None, word: str) -> None:
    if not path:
        return
    try:
        # One short write in append mode: lines from concurrent jobs do not interleave.
        with open(path, "a") as out:
            out.write(word + "\n")
    except OSError:  # progress is a courtesy; the job's result is what matters
        pass


def _clock(seconds: float) -> str:
    return str(dt.timedelta(seconds=int(round(max(seconds, 0.0)))))


class Progress:
    """Prints a line each time a job of the sweep ends (see the module docstring)."""

    def __init__(self, sweep_id: str, total: int, path: Path | None = None, stream: IO[str] | None = None,
                 interval: float = 0.5):
        self.sweep_id, self.total, self.path = sweep_id, total, path
        self.stream = stream if stream is not None else sys.stdout
        self.interval = interval
        self.done = self.failed = self.printed = 0
        self._start = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self, ended: int, failed: int, elapsed: float) -> str:
        left = elapsed / ended * (self.total - ended) if ended else float("nan")
        eta = f"about {_clock(left)} left" if ended else "time left unknown yet"
        return (f"[sweep {self.sweep_id}] {ended}/{self.total} jobs done, {failed} failed, "
                f"{_clock(elapsed)} elapsed, {eta}")

    def update(self, done: int, failed: int) -> None:
        """Counts seen so far (they only grow); prints one line per job ended since the last call."""
        with self._lock:
            self.done, self.failed = max(self.done, done), max(self.failed, failed)
            ended = min(self.done + self.failed, self.total)
            elapsed = time.monotonic() - self._start
            for n in range(self.printed + 1, ended + 1):
                print(self.line(n, min(self.failed, n), elapsed), file=self.stream, flush=True)
            self.printed = max(self.printed, ended)

    def poll(self) -> None:
        """Read the jobs' file once and report what it says."""
        if self.path is None:
            return
        try:
            words = self.path.read_text().split()
        except OSError:
            return
        self.update(words.count(DONE), words.count(FAILED))

    def __enter__(self) -> "Progress":
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            self._thread = threading.Thread(target=self._watch, name="sweep-progress", daemon=True)
            self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
