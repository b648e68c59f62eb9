"""`manage.py db_worker`: django-tasks-db's worker, which runs the background jobs
(ingest/jobs/runner.py), with what this service adds around it:

- a supervisor thread (ingest/jobs/supervision.py) that says every JOB_LEASE_SECONDS / 4
  that the worker and its job in hand are alive, and takes back jobs whose workers went
  quiet;
- the embedder is loaded and warmed before the first job is taken;
- the database going away does not end it: it waits and carries on by itself;
- SIGTERM (and Ctrl-C) lets the job in hand finish its batch and go back to the queue,
  then the worker exits; a second signal ends it at once;
- it runs at a lower CPU priority (JOB_WORKER_NICE), so the API's requests on the same
  host come first;
- its metrics (jobs, chunks embedded, pages read by OCR, its database pools) go to the
  host's METRICS_DIR, which the web server beside it serves; on a host without one,
  `--metrics-port` serves them itself (docs/metrics.md).

It replaces django_tasks_db's command of the same name (`ingest` comes first in
INSTALLED_APPS), with the same options.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from argparse import ArgumentParser
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError, close_old_connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker

from common import metrics
from common.db import pool_metrics
from ingest import warmup
from ingest.jobs.runner import runner
from ingest.jobs.supervision import Supervisor

logger = logging.getLogger("ingest.jobs")


def lower_priority(by: int) -> None:
    """nice(2) for the whole process. Linux keeps a priority per thread, which new threads
    (PyTorch's) inherit from their creator; those already running (numpy's OpenBLAS pool,
    started at import) are lowered one by one."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        os.nice(by)
        return
    for task in tasks.iterdir():
        thread = int(task.name)
        with contextlib.suppress(ProcessLookupError):  # a thread that has just ended
            current = os.getpriority(os.PRIO_PROCESS, thread)
            os.setpriority(os.PRIO_PROCESS, thread, min(19, current + by))


class Worker(db_worker.Worker):
    def run(self) -> None:
        metrics.publish_info()
        pool_metrics.start_sampling()
        runner.serve_as(self.worker_id)
        supervisor = Supervisor(runner)
        supervisor.start()
        warmup.warm_up(store=False)
        try:
            while True:
                try:
                    super().run()
                    return
                except DatabaseError as exc:
                    if not self.running:
                        return
                    logger.warning(
                        "worker %s: the database is unavailable (%s); trying again",
                        self.worker_id,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else exc,
                    )
                    close_old_connections()
                    time.sleep(max(self.interval, 1.0))
                    self.startup_delay = False
        finally:
            supervisor.stop()

    def shutdown(self, signum: int, frame: FrameType | None) -> None:
        runner.release()
        super().shutdown(signum, frame)


def serve_metrics(host: str, port: int) -> None:
    """The host's metrics on `port`, under /metrics's rule (common/metrics.py)."""
    if not settings.METRICS_ENABLED:
        raise CommandError("--metrics-port needs METRICS_ENABLED=true")
    metrics.remove_dead_files(settings.METRICS_DIR)  # as gunicorn does at its start
    try:
        metrics.serve(host, port)
    except OSError as exc:
        raise CommandError(f"--metrics-port {port} on {host}: {exc}") from None
    logger.info("metrics served on http://%s:%s/metrics", host, port)


class Command(db_worker.Command):
    help = (
        "Run a background worker: take queued ingestion jobs from the database, one at a "
        "time, until stopped. Any number may run, on any hosts sharing the database."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--metrics-port",
            type=int,
            help="Serve GET /metrics of this host's workers on this port (a host without a "
            "web server; one worker per host)",
        )
        parser.add_argument(
            "--metrics-host",
            default="127.0.0.1",
            help="The address --metrics-port listens on (default: %(default)s)",
        )

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        **options: Any,
    ) -> None:
        self.configure_logging(verbosity)
        if options.get("metrics_port") is not None:
            serve_metrics(options["metrics_host"], options["metrics_port"])
        if settings.JOB_WORKER_NICE:
            lower_priority(settings.JOB_WORKER_NICE)
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        worker = Worker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=worker_id,
            excluded_queue_names=excluded,
        )
        if reload and not batch:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
