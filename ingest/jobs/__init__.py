"""Background ingestion: a document queued as a job, read, cut and embedded by a worker
(`manage.py db_worker`), and stored by the same write path as a synchronous ingest
(ingest/services.py `document_store`).

The queue is Django's Tasks API (the django-tasks backport) with its database backend,
on the registry's database: no broker, and any number of workers on any number of hosts
share it through row locks. Each job is an `IngestJob` row holding its upload until it
succeeds or is cancelled; the task only names the job. The modules:

- queueing.py: an upload queued (`ingest_in_background`), a failed job retried.
- runner.py: the task a worker runs, and how a job ends (retried, failed, released).
- supervision.py: a worker's heartbeat, jobs taken back from lost workers, pruning;
  the `db_worker` command runs it beside the runner.
- selectors.py: the jobs as the API reads them; queue_health.py: the queue for /health.

What the library leaves to us:

- Progress: the chunks are embedded in batches, and each batch is counted on the job.
- Retries: a passing failure (database, store or model unavailable) queues the job again
  after JOB_RETRY_SECONDS, doubling each time, JOB_MAX_ATTEMPTS times in all; a failure
  of the document itself (unreadable, empty, binary) fails it at once, with the status
  and message the synchronous path answers.
- Lost workers: each worker says it is alive every JOB_LEASE_SECONDS / 4, for itself and
  for the job in hand. Any worker takes back a running job not heard of for
  JOB_LEASE_SECONDS and queues it again under a new task: a job is run only by the
  holder of its current task (`task_id`, checked when it starts, at every batch and,
  under a row lock, when it is written), so the worker given up on can never write it.
- Stopping: SIGTERM lets the worker finish the embedder's batch (32 chunks), put the job
  back in the queue and exit.

A queued document is in the registry at once, `indexed: false` with no chunks, so lists
show it and an identical upload finds it; answers never cite it until its job has
written it. Deleting it cancels its job.
"""
