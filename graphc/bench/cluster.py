"""Where a sweep's tasks run: in this process, or as tasks on ``dask.distributed``.

:func:`task_runner` gives a :class:`Runner` whose ``run(calls)`` yields each
call's result as soon as it is done. Serial runs the calls in order here. Dask
starts a ``LocalCluster`` of one single-threaded worker process per core (a
measured step time then has a core to itself, as far as the machine allows), or
connects to the scheduler at ``--scheduler ADDRESS``; each call is one task.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

Call = tuple[Callable[..., Any], tuple[Any, ...]]

INSTALL_HINT = "pip install graphc[remat] (or run with --serial)"


class Runner:
    """Runs calls and yields ``(index, result)`` pairs as they finish."""

    def __init__(self, client: Any = None) -> None:
        self.client = client

    @property
    def where(self) -> str:
        if self.client is None:
            return "serially in this process"
        workers = len(self.client.scheduler_info().get("workers", {}))
        return f"on dask.distributed, {workers} worker{'s' if workers != 1 else ''} at {self.client.scheduler.address}"

    def run(self, calls: Sequence[Call]) -> Iterator[tuple[int, Any]]:
        if self.client is None:
            for index, (func, args) in enumerate(calls):
                yield index, func(*args)
            return
        from distributed import as_completed

        futures = [self.client.submit(func, *args, pure=False) for func, args in calls]
        index_of = {future.key: index for index, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                yield index_of[future.key], future.result()
        finally:
            for future in futures:
                future.cancel()


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise RuntimeError(f"sweeping on Dask needs the distributed package: {INSTALL_HINT}") from None
    return distributed


@contextmanager
def task_runner(serial: bool = False, scheduler: str | None = None, workers: int | None = None) -> Iterator[Runner]:
    """A :class:`Runner`: serial, connected to ``scheduler``, or on a ``LocalCluster`` of
    ``workers`` processes (default: one per core), closed on exit.

    Local workers start from a fork server where the platform has one: a clean process forked
    once, so workers do not inherit the threads of the caller's libraries (forking a process
    that runs JAX's or BLAS's threads can deadlock), and start faster than spawned ones.
    """
    if serial:
        yield Runner()
        return
    distributed = _distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="10s")
        except OSError as err:
            raise OSError(f"no Dask scheduler answered at {scheduler} ({err}); start one with `dask scheduler` and "
                          "workers with `dask worker ADDRESS`, or run without --scheduler") from None
        with client:
            yield Runner(client)
        return
    import dask

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    with dask.config.set({"distributed.worker.multiprocessing-method": method}):
        cluster = distributed.LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                           processes=True, dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        yield Runner(client)
