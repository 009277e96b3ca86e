"""Typed events the evaluator publishes, and the broker its subscribers register with.

Each evaluation of a window -- the first, and every re-evaluation after late
labels -- is published once as a :class:`WindowEvaluated` holding the typed
:class:`~detectors.window_result.WindowResult`. Storage, metrics, the demo's
display and the alerting layer subscribe to it instead of the evaluator
calling each in turn (APScheduler's ``EventBroker`` in ``abc.py`` is the model).

Subscribers run synchronously in the order they subscribed, in the
evaluating thread. The store subscribes first: an exception from a
subscriber propagates to the evaluator and the later subscribers do not see
the event, so nothing acts on a result that was not stored (the window's
claim then goes stale and another evaluation takes it over).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from detectors.window_result import WindowResult


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowEvaluated:
    """One evaluation of one window; ``reevaluation`` is true after late labels changed it."""

    result: WindowResult
    reevaluation: bool = False


Subscriber = Callable[[WindowEvaluated], None]


class EventBroker:
    """Delivers each published :class:`WindowEvaluated` to every subscriber, in order."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Subscriber:
        """Add ``subscriber`` after the existing ones; return it (for :meth:`unsubscribe`)."""
        with self._lock:
            self._subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Remove ``subscriber``; a subscriber not subscribed is ignored."""
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def publish(self, event: WindowEvaluated) -> None:
        """Call every subscriber with ``event``; the first exception propagates (see above)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber(event)


__all__ = ["EventBroker", "Subscriber", "WindowEvaluated"]
