"""Total deadlines for blocking calls to outside servers (the LLM, the embeddings API).

An HTTP client's timeout bounds each connect and each read, not the whole call: a server
that stalls between stream chunks, or trickles bytes, holds the caller for as long as it
likes. Here the call runs on a helper thread and the caller stops waiting at the deadline;
the abandoned helper ends by itself when its own per-read timeout fires (or, for a stream,
at its next chunk). The helpers never touch the database.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The call did not finish before its deadline."""


def remaining(deadline: float) -> float:
    """Seconds left until deadline (a time.monotonic() value), never negative."""
    return max(0.0, deadline - time.monotonic())


def call_before(deadline: float, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs), or DeadlineExceeded once the deadline passes; its exceptions
    are raised here."""
    if remaining(deadline) <= 0:
        raise DeadlineExceeded()
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as error:  # handed over to the caller
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="deadline-call", daemon=True).start()
    if not done.wait(remaining(deadline)):
        raise DeadlineExceeded()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


_END = object()


class IterateBefore:
    """Iterates source on a helper thread; raises DeadlineExceeded when the next item has
    not come by the deadline. close() (or the deadline) makes the helper close source at
    its next item, if source has a close()."""

    def __init__(self, source: Iterable[Any], deadline: float) -> None:
        self._source, self._deadline = source, deadline
        self._items: queue.SimpleQueue[tuple[Any, BaseException | None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="deadline-stream", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for item in self._source:
                if self._stop.is_set():
                    break
                self._items.put((item, None))
            self._items.put((_END, None))
        except BaseException as error:  # handed over to the consumer
            self._items.put((_END, error))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            item, error = self._items.get(timeout=remaining(self._deadline))
        except queue.Empty:
            self.close()
            raise DeadlineExceeded() from None
        if error is not None:
            raise error
        if item is _END:
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
