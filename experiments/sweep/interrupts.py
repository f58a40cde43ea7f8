"""SIGTERM handled like Ctrl-C, and both held back while the tracking store is written.

An exception raised by a signal handler can land anywhere, including in the middle of a
write to the store (a half-created SQLite schema, a transaction left open). So inside
:func:`sigterm_raises`, SIGINT and SIGTERM raise at once, except within a
:func:`deferred` section, where they are remembered and raised as the section ends.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives."""


_depth = 0  # nesting of deferred sections in the main thread
_pending: list[int] = []  # signals received inside one


def _raise(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(f"received signal {signum}")


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, an interrupt waits until the block has finished."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending:
            _raise(_pending.pop())


F = TypeVar("F", bound=Callable)


def deferring(function: F) -> F:
    """``function`` run as a :func:`deferred` section."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with deferred():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM raises (KeyboardInterrupt or
    :class:`Interrupted`), held back while a deferred section runs; a second SIGTERM kills.

    Outside the main thread (where signals cannot be handled) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if signum == signal.SIGTERM:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if _depth:
            _pending[:] = [signum]
            return
        _raise(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _pending.clear()
