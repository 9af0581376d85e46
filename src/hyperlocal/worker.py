"""``hyperlocal worker``: a Celery worker that runs the jobs of the models it serves.

Pool: ``threads``. The process owns one asyncio loop (a ``LoopThread``) that holds its
services: one database pool, one Redis client, one engine registry, so a model's weights load
once per process. Each pool thread hands its delivery to that loop and blocks until the job
ends; the jobs themselves run concurrently on the loop. The alternatives fail us:

- prefork forks after start-up, and neither a CUDA context nor an asyncpg pool survives a fork;
  every child would also load its own copy of the weights into the same GPU;
- solo runs one job at a time, on the thread that also talks to the broker;
- gevent and eventlet monkey-patch the standard library underneath asyncio and asyncpg.

Celery's time limits do not apply to threads; the runner's per-job timeout does.

SIGTERM is Celery's warm shutdown: no new deliveries, and prefetched messages go back to Redis.
Running jobs get ``shutdown_grace_seconds`` to finish; then they are stopped, their jobs put
back in the queue at once (leases released) and sent again for another worker, and the
services close. The process exits 0. A SIGKILLed worker stops renewing its job's lease:
any worker's sweep requeues the job once the lease expires (``job_max_attempts`` bounds how
often), and Redis also hands its unacknowledged message out again after the visibility timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from hyperlocal import tracing
from hyperlocal.core.services import Services
from hyperlocal.core.workers import Identity, Reporter, device_source
from hyperlocal.engines.base import EngineFactory
from hyperlocal.errors import HyperlocalError
from hyperlocal.prometheus import MetricsServer, PrometheusMetrics
from hyperlocal.queue.celery_app import TASK_NAME, queue_name
from hyperlocal.queue.dispatch import CeleryQueue
from hyperlocal.queue.execution import JobExecutor, Sweeper
from hyperlocal.queue.loop import LoopThread
from hyperlocal.queue.runner import JobRunner, Outcome
from hyperlocal.runtime import close_services, open_runner, open_services
from hyperlocal.settings import Settings
from hyperlocal.store import jobs as store
from hyperlocal.store.db import Database

__all__ = ["WorkerOptions", "preload_models", "run_worker", "serving_models", "sweep_interval"]

log = logging.getLogger(__name__)

BURST_CHECK_S = 0.5
BURST_IDLE_CHECKS = 2  # consecutive idle looks before a burst worker leaves


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    models: tuple[str, ...] = ("*",)  # globs matched against catalogue model ids
    concurrency: int = 4
    burst: bool = False  # leave once the queues are empty and no job of these models is active
    metrics_port: int | None = None  # serve /metrics on HYPERLOCAL_HOST at this port
    preload: tuple[str, ...] = ()  # model ids whose local weights load at start, pinned


def run_worker(
    settings: Settings,
    options: WorkerOptions,
    engines: Mapping[str, EngineFactory] | None = None,
) -> int:
    """Consume until SIGTERM (or, in burst mode, until idle); return the exit status.

    ``engines`` adds or replaces engine factories by name, as in ``create_app``.
    """
    tracing.setup_tracing(tracing.WORKER_SERVICE)  # nothing unless OTEL_EXPORTER_OTLP_ENDPOINT
    loop = LoopThread()
    loop.start()
    try:
        services = loop.call(open_services(settings, engines, start_queue=False))
        served = _serve_metrics(settings, options, services)
        try:
            loop.call(preload_models(services, options.preload))
            return _consume(settings, options, loop, services)
        finally:
            if served is not None:
                served.close()
            loop.call(close_services(services))
    finally:
        loop.stop()
        tracing.shutdown_tracing()  # flushes the spans not yet exported


def _serve_metrics(
    settings: Settings, options: WorkerOptions, services: Services
) -> MetricsServer | None:
    """The worker's own metrics (its jobs' starts, ends, refunds, loads and device memory),
    for the scrape config that covers the fleet; the queue's gauges are the API's."""
    if options.metrics_port is None or not isinstance(services.metrics, PrometheusMetrics):
        return None
    return MetricsServer.start(
        services.metrics.collectors(), f"{settings.host}:{options.metrics_port}"
    )


async def preload_models(services: Services, names: Sequence[str]) -> None:
    """Loads each model's local weights now and pins them on a device (``--preload``);
    ValueError, saying why, for a model that cannot be."""
    from hyperlocal.engines.local.runtime import Preloading

    for name in names:
        try:
            entry = services.catalog.get(name)
            engine = await services.engines.get(entry.engine)
            if not isinstance(engine, Preloading):
                raise ValueError(f"--preload {name}: engine {entry.engine} loads no local weights")
            device = await engine.preload(entry.engine_options)
        except HyperlocalError as exc:
            raise ValueError(f"--preload {name}: {exc.message}") from exc
        log.info("preloaded", extra={"model": name, "device": device})


def serving_models(services: Services, globs: Sequence[str]) -> list[str]:
    """Catalogue ids that match a glob and whose engine is installed in this process."""
    matched = [e for e in services.catalog if any(fnmatchcase(e.id, g) for g in globs)]
    missing = sorted(e.id for e in matched if not services.engines.available(e.engine))
    if missing:
        log.warning("engine not installed here; not serving", extra={"models": missing})
    return [e.id for e in matched if services.engines.available(e.engine)]


def sweep_interval(lease_s: float) -> float:
    """Often enough that a lost job waits little longer than its lease."""
    return min(5.0, max(0.2, lease_s / 3))


def _consume(
    settings: Settings, options: WorkerOptions, loop: LoopThread, services: Services
) -> int:
    queue = _scale_out_queue(services)
    models = serving_models(services, options.models)
    if not models:
        raise ValueError(f"no installed model matches {list(options.models)}")
    runner = _runner(settings, services)
    sweeper = Sweeper(runner, queue, sweep_interval(runner.lease_s))
    queue.report_with(_reporter(settings, services, runner).report)  # with each heartbeat
    loop.call(queue.register_worker(runner.worker, models, sweeper.heartbeat_ttl))
    sweeping = loop.call(_spawn(sweeper.run()))
    _drain_on_shutdown(loop, runner, settings.shutdown_grace_seconds)
    try:
        _register_task(queue.celery, loop, JobExecutor(runner, queue))
        queues = [queue_name(queue.namespace, m) for m in models]
        worker = _celery_worker(queue.celery, queues, options, settings.log_level)
        if options.burst:
            idle = _idle_check(queue.celery, queues, loop, services.db, models)
            _watch_burst(idle)
        log.info("worker consuming", extra={"queues": queues, "burst": options.burst})
        worker.start()
        return int(worker.exitcode or 0)
    finally:
        loop.loop.call_soon_threadsafe(sweeping.cancel)
        with contextlib.suppress(Exception):  # gone anyway: its heartbeat expires
            loop.call(queue.unregister_worker(runner.worker))


def _scale_out_queue(services: Services) -> CeleryQueue:
    if not isinstance(services.queue, CeleryQueue):
        raise ValueError(
            "hyperlocal worker needs scale-out mode: a PostgreSQL HYPERLOCAL_DATABASE_URL "
            "and HYPERLOCAL_REDIS_URL"
        )
    return services.queue


def _reporter(settings: Settings, services: Services, runner: JobRunner) -> Reporter:
    """What GET /admin/workers shows of this process: its devices, models and jobs."""
    identity = Identity.current(runner.worker)
    devices = device_source(services.engines)
    return Reporter(identity, services.db, devices, settings.gpu_memory_fraction)


def _runner(settings: Settings, services: Services) -> JobRunner:
    # Webhook outbox rows are delivered by the API servers' dispatchers, which poll the outbox:
    # GPU machines need no way out to the receivers.
    return open_runner(
        settings,
        services.lifecycle,
        services.catalog,
        services.router,
        services.storage,
        private=services.private,
    )


def _drain_on_shutdown(loop: LoopThread, runner: JobRunner, grace: float) -> None:
    """At Celery's warm shutdown, give running jobs ``grace`` seconds, then stop them and
    queue them again (their pool threads then return, and Celery exits)."""
    from celery import signals  # type: ignore[import-untyped]

    draining: list[concurrent.futures.Future[None]] = []  # held: the loop keeps weak refs

    def on_shutdown(**_kwargs: Any) -> None:
        draining.append(asyncio.run_coroutine_threadsafe(runner.drain(grace), loop.loop))

    signals.worker_shutting_down.connect(on_shutdown, weak=False)


async def _spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    return asyncio.create_task(coro)


def _register_task(app: Any, loop: LoopThread, executor: JobExecutor) -> None:
    def run_job(job_id: str, deferrals: int = 0) -> str | None:
        outcome: Outcome | None = loop.call(executor.execute(job_id, deferrals))
        return outcome.value if outcome else None

    options = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}
    app.task(name=TASK_NAME, **options)(run_job)


def _celery_worker(app: Any, queues: list[str], options: WorkerOptions, level: str) -> Any:
    from celery import signals

    # A receiver of setup_logging tells Celery that logging is configured (by our CLI).
    signals.setup_logging.connect(_keep_logging, weak=False)
    return app.Worker(
        hostname=f"hyperlocal-{os.getpid()}@{socket.gethostname()}",
        pool_cls="threads",
        concurrency=options.concurrency,
        queues=queues,
        loglevel=level.upper(),
        quiet=True,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        optimization="fair",
    )


def _keep_logging(**_kwargs: Any) -> None:
    return None


# -- burst mode ---------------------------------------------------------------------------------


def _idle_check(
    app: Any, queues: list[str], loop: LoopThread, db: Database, models: list[str]
) -> Callable[[], bool]:
    def idle() -> bool:
        return _backlog(app, queues) == 0 and loop.call(_active_jobs(db, models)) == 0

    return idle


def _backlog(app: Any, queues: list[str]) -> int:
    from kombu.exceptions import ChannelError

    total = 0
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        for name in queues:
            with contextlib.suppress(ChannelError):  # never declared: nothing was sent to it
                total += int(channel.queue_declare(name, passive=True).message_count)
    return total


async def _active_jobs(db: Database, models: list[str]) -> int:
    # Queued or running, leases expired or not: a job that a killed worker left running keeps
    # a burst worker alive until the sweep has recovered and finished it.
    async with db.read() as session:
        return await store.count_active_for_models(session, models)


def _watch_burst(idle: Callable[[], bool]) -> None:
    """Once the worker is ready and stays idle, send ourselves SIGTERM: a warm shutdown."""
    from celery import signals

    ready = threading.Event()

    def on_ready(**_kwargs: Any) -> None:
        ready.set()

    signals.worker_ready.connect(on_ready, weak=False)
    threading.Thread(target=_burst_loop, args=(ready, idle), daemon=True).start()


def _burst_loop(ready: threading.Event, idle: Callable[[], bool]) -> None:
    ready.wait()
    streak = 0
    while streak < BURST_IDLE_CHECKS:
        time.sleep(BURST_CHECK_S)
        try:
            streak = streak + 1 if idle() else 0
        except Exception:
            log.exception("burst idle check failed")
            streak = 0
    log.info("burst: queues empty and no job active; shutting down")
    os.kill(os.getpid(), signal.SIGTERM)
