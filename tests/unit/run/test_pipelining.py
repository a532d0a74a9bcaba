from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ml_batch.run.pipelining import BackgroundWriter, Prefetch


def test_prefetch_yields_everything_in_order() -> None:
    with Prefetch(iter(range(100))) as items:
        assert list(items) == list(range(100))


def test_prefetch_reraises_the_sources_error_in_the_consumer() -> None:
    def source() -> Iterator[int]:
        yield 1
        raise ValueError("source table vanished")

    with pytest.raises(ValueError, match="source table vanished"), Prefetch(source()) as items:
        assert next(items) == 1
        next(items)


def test_prefetch_stops_and_closes_the_source_when_the_consumer_stops() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    with pytest.raises(RuntimeError, match="validation failed"), Prefetch(source()) as items:
        for item in items:
            if item == 3:
                raise RuntimeError("validation failed")
    assert closed.wait(5)


def test_writer_applies_items_in_order() -> None:
    written: list[int] = []
    with BackgroundWriter(written.append) as sink:
        for i in range(50):
            sink.submit(i)
    assert written == list(range(50))


def test_writer_error_surfaces_in_the_submitting_thread() -> None:
    def write(item: int) -> None:
        if item == 2:
            raise OSError("COPY failed")

    with pytest.raises(OSError, match="COPY failed"), BackgroundWriter(write) as sink:
        for i in range(10):
            sink.submit(i)
