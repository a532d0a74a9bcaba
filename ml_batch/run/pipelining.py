"""Overlap database I/O with computation: a prefetching reader and a background writer.

ADBC releases the GIL while it talks to PostgreSQL, so while chunk i is scored, one thread already
fetches chunk i+1 and another COPYs the predictions of chunk i-1. Queues hold one item each, so at most
one extra chunk waits on either side (besides the chunks being scored). An error in either thread is
re-raised in the caller; the caller stopping early stops the threads.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()
_POLL_S = 0.1


class Prefetch(Generic[T]):
    """Iterate `source` in a background thread, one item ahead of the consumer."""

    def __init__(self, source: Iterator[T]) -> None:
        self._source = source
        self._queue: queue.Queue[object] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ml-batch-prefetch", daemon=True)

    def __enter__(self) -> Iterator[T]:
        self._thread.start()
        return self._iterate()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._error = exc
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()
        self._put(_DONE)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _iterate(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if item is _DONE:
                if self._error is not None:
                    raise self._error
                return
            yield item  # type: ignore[misc]


class BackgroundWriter(Generic[T]):
    """Apply `write` to each submitted item in a background thread, in order; `seconds` is the time spent in
    `write` (read it once the `with` block is over)."""

    def __init__(self, write: Callable[[T], None]) -> None:
        self._write = write
        self._queue: queue.Queue[object] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ml-batch-writer", daemon=True)
        self.seconds = 0.0

    def __enter__(self) -> BackgroundWriter[T]:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._queue.put(_DONE)
        self._thread.join()
        if exc is None and self._error is not None:
            raise self._error

    def submit(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                started = time.perf_counter()
                try:
                    self._write(item)  # type: ignore[arg-type]
                except BaseException as exc:  # noqa: BLE001 - re-raised in the submitting thread
                    self._error = exc
                self.seconds += time.perf_counter() - started
