"""Which tests each pass of `make test` runs: the one place that says so.

`make test` runs the suite three times, on what production can run on: SQLite (the
default of a checkout), PostgreSQL 15 (production's registry, the json store) and
PostgreSQL 18 with pgvector (VECTOR_STORE=pgvector). `SUITE_PASS` names the pass
(sqlite, postgres, pgvector); without it, as when a developer runs pytest, every test
runs. A test runs in a pass when that pass changes what the test exercises:

- The PostgreSQL pass runs what production's registry decides: every test that touches
  a database, but the pgvector store's own.
- The SQLite pass runs what the database engine decides: every registry read and write
  through the ORM or SQL, transactions and locks (the job queue's above all), the
  migrations, the commands' SQL (COPY on PostgreSQL, the ORM's bulk writes on SQLite),
  the admin's queries; and what only a checkout's default meets (`make run`).
- The pgvector pass runs what the vector store decides: every write, delete and search
  of chunks, the units of work that keep them beside their rows, the ranking, the
  commands that read or move chunks, and the pgvector store's own tests.

A test that neither the engine nor the store changes (a parser, the URL fetcher, the
answer models' wire protocols, the settings, the server plumbing) runs in one pass:
PostgreSQL's, or SQLite's for what a checkout meets without a database server. The
table below lists the modules and classes that run in fewer than all three passes; a
test not listed runs in all three. The longest matching prefix decides.
"""

from __future__ import annotations

SQLITE, POSTGRES, PGVECTOR = "sqlite", "postgres", "pgvector"
ALL = (SQLITE, POSTGRES, PGVECTOR)

PASSES: dict[str, tuple[str, ...]] = {
    # -- the API -----------------------------------------------------------------------
    # The providers' wire protocols and streaming: no registry or store of their own.
    "tests/api/test_generated_answers.py": (POSTGRES,),
    # Schema-driven requests against the whole service: the contract, not the engine.
    "tests/api/test_fuzz.py": (POSTGRES,),
    # The old clients' replay: the API's answers, the same on every engine and store.
    "tests/api/test_old_clients.py": (POSTGRES,),
    # fetch_url against loopback servers: no database at all.
    "tests/api/test_url_safety.py": (POSTGRES,),
    # Keys are rows (engine); no chunks are read for a key.
    "tests/api/test_api_keys.py": (SQLITE, POSTGRES),
    # The commands on a SQLite file of their own, whatever the pass: once.
    "tests/api/test_api_keys.py::TestCreateApiKeyCommand": (SQLITE,),
    "tests/api/test_api_keys.py::TestKeysNotRequiredForACutoverWindow::test_start_up_warns_and_"
    "check_deploy_flags_it": (SQLITE,),
    # The audit trail is rows of the registry's database; the store has no part in it.
    "tests/api/test_audit_trail.py": (SQLITE, POSTGRES),
    # -- background jobs ---------------------------------------------------------------
    # The queue is rows under locks: both engines. The store is written by the job's
    # final write only, which TestRun (and jobs/test_runner.py) cover on pgvector.
    "tests/jobs/test_background_ingest.py": (SQLITE, POSTGRES),
    "tests/jobs/test_background_ingest.py::TestRun": ALL,
    # The readers' refusals as a job meets them: a worker's failure path, no store write.
    "tests/jobs/test_background_ingest.py::TestRun::test_hostile_documents_fail_as_the_"
    "synchronous_ingest_refuses_them": (POSTGRES,),
    # Workers killed, stopped and cut off mid-job: the lease and the fencing on
    # PostgreSQL's row locks, where several hosts run workers; the same logic on
    # SQLite's one writer, in this process: jobs/test_supervision.py.
    "tests/jobs/test_background_ingest.py::TestFaults": (POSTGRES,),
    # A PostgreSQL server of its own, whatever the pass: once.
    "tests/jobs/test_background_ingest.py::test_a_worker_carries_on_by_itself_when_the_database_"
    "comes_back": (SQLITE,),
    # The API's side of a background ingest (how it is asked for, what is refused before
    # a job exists, a job's 404, the page fetched at once): no pass changes it.
    "tests/jobs/test_background_ingest.py::TestQueued::test_prefer_respond_async_and_the_"
    "query_parameter_ask_for_it_too": (POSTGRES,),
    "tests/jobs/test_background_ingest.py::TestQueued::test_what_needs_no_parsing_is_refused_"
    "at_once": (POSTGRES,),
    "tests/jobs/test_background_ingest.py::TestQueued::test_without_async_the_answer_is_the_"
    "synchronous_one": (POSTGRES,),
    "tests/jobs/test_background_ingest.py::TestQueued::test_an_unknown_job_is_404": (POSTGRES,),
    "tests/jobs/test_background_ingest.py::TestRun::test_an_async_url_is_fetched_now_and_"
    "indexed_by_the_job": (POSTGRES,),
    # A job cancelled before it ran writes no chunk: the queue's rows alone.
    "tests/jobs/test_background_ingest.py::TestRun::test_deleting_a_queued_document_cancels_"
    "its_job": (SQLITE, POSTGRES),
    # A worker's own process (its CPU priority, a model it cannot load): no pass changes it.
    "tests/jobs/test_background_ingest.py::TestRun::test_a_worker_runs_below_the_api_s_cpu_"
    "priority": (POSTGRES,),
    "tests/jobs/test_background_ingest.py::TestRun::test_a_model_that_cannot_be_loaded_is_"
    "retried_then_fails_with_why": (POSTGRES,),
    "tests/jobs/test_supervision.py": (SQLITE, POSTGRES),
    # -- stores ------------------------------------------------------------------------
    "tests/stores/test_pgvector.py": (PGVECTOR,),
    # The JSON registry file under several processes: no database.
    "tests/stores/test_json_registry_writers.py": (SQLITE,),
    # The embedder alone: no database.
    "tests/stores/test_embeddings.py": (SQLITE,),
    # The json store's file and its journal: no engine changes them.
    "tests/stores/test_vector_journal.py": (SQLITE,),
    # The real model's ranking and answers: each store ranks in its own way.
    "tests/stores/test_real_model.py": (POSTGRES, PGVECTOR),
    # -- the admin ---------------------------------------------------------------------
    # A browser driving the pages: what the other admin tests check row by row.
    "tests/admin/test_browser.py": (POSTGRES,),
    # django-axes' throttling: its own rows, the same on either engine.
    "tests/admin/test_login_throttling.py": (POSTGRES,),
    # -- the cutover -------------------------------------------------------------------
    # The registry's import, export and return: rows and SQL, no chunks.
    "tests/cutover/test_import_registry.py": (SQLITE, POSTGRES),
    "tests/cutover/test_export_registry.py": (SQLITE, POSTGRES),
    # The JSON registry is live: VECTOR_STORE=pgvector refuses to start with it.
    "tests/cutover/test_rollback_return.py": (SQLITE, POSTGRES),
    # -- operations --------------------------------------------------------------------
    # What a checkout's `make run` meets: its default, SQLite.
    "tests/operations/test_make_run.py": (SQLITE,),
    # The table itself names real tests: no database.
    "tests/operations/test_suite_passes.py": (SQLITE,),
    # Settings refused at start-up, DATABASE_URL parsed: no database answers.
    "tests/operations/test_settings.py": (SQLITE,),
    "tests/operations/test_database_url.py": (POSTGRES,),
    # The server plumbing (config/serving/): the same under every engine and store.
    "tests/operations/test_api_fast_path.py": (POSTGRES,),
    "tests/operations/test_sync_threads.py": (POSTGRES,),
    "tests/operations/test_request_log.py": (POSTGRES,),
    # /metrics: the processes' files, the scrape's rule, the pools' and outages' figures
    # (PostgreSQL's pools): the same on every engine and store.
    "tests/operations/test_metrics.py": (POSTGRES,),
    # Several gunicorn workers at once over one registry: both engines' concurrency.
    "tests/operations/test_under_gunicorn.py": (SQLITE, POSTGRES),
    # ... and the server as an operator meets it (proxies, its log, its control socket,
    # the bare address, a bad setting): the same on every engine.
    "tests/operations/test_under_gunicorn.py::TestBehindAProxy": (POSTGRES,),
    "tests/operations/test_under_gunicorn.py::test_the_log_has_no_lifespan_or_static_noise_and_"
    "each_4xx_once": (POSTGRES,),
    "tests/operations/test_under_gunicorn.py::test_the_bare_address_leads_to_the_api_docs": (
        POSTGRES,
    ),
    "tests/operations/test_under_gunicorn.py::test_each_instance_has_a_control_socket_of_its_own": (
        POSTGRES,
    ),
    "tests/operations/test_under_gunicorn.py::test_a_configuration_error_under_gunicorn_is_one_"
    "line": (POSTGRES,),
    # PostgreSQL's own: roles and grants (chunks' too), outages, the async pool.
    "tests/operations/test_app_role.py": (POSTGRES, PGVECTOR),
    "tests/operations/test_outage.py": (POSTGRES,),
    "tests/operations/test_async_reads.py": (POSTGRES,),
    "tests/operations/test_faults.py": (POSTGRES,),
    # Several hosts on a PostgreSQL 18 with pgvector of the test's own, with a network
    # between them (VECTOR_STORE=pgvector, whatever the pass): once, in the store's pass.
    "tests/operations/test_hosts.py": (PGVECTOR,),
}


def passes_of(nodeid: str) -> tuple[str, ...]:
    """The passes a test (by its pytest node id) runs in."""
    matches = [prefix for prefix in PASSES if nodeid == prefix or nodeid.startswith(prefix + "::")]
    return PASSES[max(matches, key=len)] if matches else ALL


# Started first in a pass: the modules whose tests take tens of seconds, waiting on
# servers, workers and PostgreSQL restarts. Begun last, one of them ran on alone while
# the pass's other workers had finished.
SLOW_FIRST = (
    "tests/operations/test_hosts.py",
    "tests/jobs/test_background_ingest.py",
    "tests/operations/test_faults.py",
    "tests/operations/test_make_run.py",
    "tests/stores/test_real_model.py",
    "tests/admin/test_browser.py",
    "tests/api/test_fuzz.py",
)


def slow_first(nodeid: str) -> int:
    """A sort key: the slow modules' tests first, in SLOW_FIRST's order, then the rest."""
    module = nodeid.split("::", 1)[0]
    return SLOW_FIRST.index(module) if module in SLOW_FIRST else len(SLOW_FIRST)
