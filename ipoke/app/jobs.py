"""Bounded concurrency for model calls: a fixed pool of worker threads and a cap on waiting jobs.

The event loop never blocks on the model, at most ``workers`` jobs run at once, and at most ``max_waiting``
more wait for a worker; any further job is refused at once with :class:`QueueFull`, which carries an estimate
of when to retry. A job stays counted until its thread has finished, even when its client has gone away.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"all workers are busy and the queue is full; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


class JobQueue:
    def __init__(self, workers: int = 1, max_waiting: int = 16):
        if workers < 1 or max_waiting < 0:
            raise ValueError(f"need workers >= 1 and max_waiting >= 0, got {workers} and {max_waiting}")
        self.workers = workers
        self.capacity = workers + max_waiting
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ipoke-worker")
        self._lock = threading.Lock()
        self._in_flight = 0
        self._mean_job_s = 1.0
        self._jobs_done = 0

    def stats(self) -> dict[str, int | float]:
        with self._lock:
            return {
                "workers": self.workers,
                "capacity": self.capacity,
                "running": min(self._in_flight, self.workers),
                "waiting": max(0, self._in_flight - self.workers),
                "jobs_done": self._jobs_done,
                "mean_job_s": round(self._mean_job_s, 4),
            }

    def retry_after_s(self) -> int:
        """Seconds until a slot is likely free: the waiting jobs' share of the workers' time."""
        with self._lock:
            ahead = max(1, self._in_flight - self.workers + 1)
            return max(1, min(600, math.ceil(self._mean_job_s * ahead / self.workers)))

    async def run(self, fn: Callable[..., T], *args) -> T:
        """Run ``fn(*args)`` on a worker thread and await its result; raise QueueFull when at capacity."""
        with self._lock:
            full = self._in_flight >= self.capacity
            if not full:
                self._in_flight += 1
        if full:
            raise QueueFull(self.retry_after_s())
        try:
            future = self._executor.submit(self._timed, fn, *args)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _timed(self, fn: Callable[..., T], *args) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._jobs_done += 1
                # Running mean over the first jobs, then an exponential average that follows load changes.
                weight = max(1.0 / self._jobs_done, 0.2)
                self._mean_job_s += weight * (elapsed - self._mean_job_s)

    def _release(self, _future: Future | None) -> None:
        with self._lock:
            self._in_flight -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
