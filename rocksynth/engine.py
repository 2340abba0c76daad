"""Where chunked computations run: dask threads on this machine, a local cluster of worker
processes with a memory limit, or an existing `dask.distributed` cluster.

`dask_engine(...)` is a context manager; every `dask.compute` inside it (the chunked measures of
`rocksynth.properties.chunked`, the samples of `compare`) runs there. No scheduler of our own:
dask's threaded scheduler by default, `distributed.LocalCluster` with `memory_limit`, and
`distributed.Client(address)` for a cluster someone else runs.
"""

import contextlib
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from dask.callbacks import Callback
from dask.core import flatten

from rocksynth.errors import BadInputError

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str, name: str = "--memory-limit") -> int:
    """'4GB', '512MiB', '2e9' -> bytes (decimal kB/MB/GB, binary KiB/MiB/GiB).

    Raises
    ------
    BadInputError
        For text that is not a positive size.
    """
    match = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-zA-Z]*)\s*", str(text))
    try:
        value = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else float("nan")
    except (KeyError, ValueError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise BadInputError(f"{name} {text!r} is not a size; write e.g. 4GB or 512MiB")
    return int(value)


@dataclass
class Engine:
    """The scheduler in use: a one-line description and the distributed client, if any."""

    description: str
    client: object = None

    @property
    def distributed(self) -> bool:
        return self.client is not None


@contextlib.contextmanager
def dask_engine(jobs: int = 2, memory_limit: "int | None" = None, scheduler: "str | None" = None,
                on_task: "Optional[Callable[[int, int], None]]" = None) -> Iterator[Engine]:
    """Run the dask computations of the enclosed block on a chosen engine.

    Parameters
    ----------
    jobs : int
        Threads (default engine) or worker processes (with `memory_limit`).
    memory_limit : int, optional
        Bytes per worker process. Starts a `distributed.LocalCluster` of `jobs` single-threaded
        worker processes that spill to disk and pause above this limit.
    scheduler : str, optional
        Address of a running `dask.distributed` scheduler (e.g. 'tcp://10.0.0.5:8786'); default:
        the `DASK_SCHEDULER_ADDRESS` environment variable, if set. `jobs` and `memory_limit` are
        then the cluster's business and are ignored.
    on_task : callable, optional
        `on_task(done, total)` after each finished task of the local engines, and after each
        finished result (a chunk's) on a cluster: a progress bar.

    Yields
    ------
    Engine

    Raises
    ------
    BadInputError
        When the scheduler cannot be reached (one line, with the address).
    """
    import dask

    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    with contextlib.ExitStack() as stack:
        if scheduler:
            client = _connect(scheduler)
            stack.callback(client.close)
            engine = Engine(f"dask cluster at {scheduler} ({_worker_count(client)} workers)", client)
        elif memory_limit:
            from distributed import Client, LocalCluster

            cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                   memory_limit=memory_limit, dashboard_address=None, silence_logs=50)
            stack.callback(cluster.close)
            client = Client(cluster, set_as_default=False)
            stack.callback(client.close)
            engine = Engine(f"local cluster of {jobs} processes, {memory_limit / 1e9:.3g} GB each", client)
        else:
            engine = Engine(f"{jobs} thread{'s' if jobs > 1 else ''}")
        if engine.client is not None:
            scheduler_get = engine.client if on_task is None else _ProgressGet(engine.client, on_task)
            stack.enter_context(dask.config.set(scheduler=scheduler_get))
        else:
            stack.enter_context(dask.config.set(scheduler="threads", num_workers=jobs))
            if on_task is not None:
                stack.enter_context(_TaskCounter(on_task))
        yield engine


def _connect(address: str):
    from distributed import Client

    try:
        return Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(f"cannot reach the dask scheduler at {address}: {reason}") from None


class _ProgressGet:
    """A dask scheduler function that computes on a distributed client and reports each result
    as it arrives (`on_task(done, total)`)."""

    def __init__(self, client, on_task):
        self.client, self.on_task = client, on_task

    def __call__(self, dsk, keys, **kwargs):
        import time

        futures = self.client.get(dsk, keys, sync=False, **kwargs)
        flat = list(flatten(futures))
        reported = -1
        while True:
            done = sum(future.done() for future in flat)
            if done != reported:
                self.on_task(done, len(flat))
                reported = done
            if done == len(flat):
                return self.client.gather(futures)  # raises a task's error, if any
            time.sleep(0.1)


def _worker_count(client) -> int:
    return len(client.scheduler_info().get("workers", {}))


class _TaskCounter(Callback):
    """A dask callback that reports (finished tasks, tasks) of each local computation."""

    def __init__(self, on_task: "Callable[[int, int], None]"):
        super().__init__()
        self._on_task = on_task
        self._done = self._total = 0

    def _start_state(self, dsk, state):
        self._done = 0
        self._total = len(state["ready"]) + len(state["waiting"]) + len(state["running"])
        self._on_task(0, self._total)

    def _posttask(self, key, result, dsk, state, worker_id):
        self._done += 1
        self._on_task(self._done, self._total)
