"""Start-up refuses malformed or missing configuration with a message naming the variable."""

from __future__ import annotations

import pytest

from tests.support.processes import child_env, run_manage

PROD_SECRET = "x" * 20 + "-production-secret-key-for-tests-only-0123456789"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres?sslmode=disable"


def start(**env: str):
    return run_manage("check", env=child_env(**env))


class TestMalformedSetting:
    @pytest.mark.parametrize(
        "variable, value, expected",
        [
            ("DB_POOL_SIZE", "abc", "DB_POOL_SIZE='abc' is not an integer"),
            ("DB_POOL_SIZE", "0", "DB_POOL_SIZE=0 is too small: expected at least 1"),
            ("DB_MAX_OVERFLOW", "-1", "DB_MAX_OVERFLOW=-1 is too small"),
            ("DB_POOL_RECYCLE", "soon", "DB_POOL_RECYCLE='soon' is not a number"),
            ("USE_JSON_REGISTRY", "maybe", "USE_JSON_REGISTRY='maybe' is not a boolean"),
            ("DB_POOL", "perhaps", "DB_POOL='perhaps' is not a boolean"),
            ("DEBUG", "si", "DEBUG='si' is not a boolean"),
            ("DATABASE_URL", "postgresql://u@h:port/db", "DATABASE_URL could not be parsed"),
            ("MAX_UPLOAD_MB", "lots", "MAX_UPLOAD_MB='lots' is not an integer"),
            ("CHUNK_OVERLAP_WORDS", "500", "must be smaller than CHUNK_SIZE_WORDS=120"),
            ("EMBEDDER", "word2vec", "EMBEDDER='word2vec' is not one of gemini, hashing-v1"),
            ("ANSWER_GENERATOR", "gpt", "ANSWER_GENERATOR='gpt' is not one of extractive"),
            ("PGVECTOR_EF_SEARCH", "2000", "PGVECTOR_EF_SEARCH=2000 is over 1000"),
            ("PGVECTOR_EF_SEARCH", "0", "PGVECTOR_EF_SEARCH=0 is too small"),
            ("JOB_WORKER_NICE", "20", "JOB_WORKER_NICE=20 is too large: expected at most 19"),
            (
                "INGEST_TRUSTED_NETWORKS",
                "10.0.0.0/33",
                "INGEST_TRUSTED_NETWORKS entry '10.0.0.0/33' is not a network in CIDR",
            ),
        ],
    )
    def test_it_stops_with_the_variable_and_what_it_expected(self, variable, value, expected):
        result = start(**{variable: value})
        assert result.returncode != 0
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


class TestMissingProviderSetting:
    @pytest.mark.parametrize(
        "env, expected",
        [
            ({"ANSWER_GENERATOR": "gemini"}, "ANSWER_GENERATOR=gemini needs GOOGLE_API_KEY"),
            (
                {"ANSWER_GENERATOR": "openai", "OPENAI_API_KEY": "x"},
                "ANSWER_GENERATOR=openai needs OPENAI_MODEL",
            ),
            (
                {"ANSWER_GENERATOR": "openai", "OPENAI_MODEL": "m"},
                "ANSWER_GENERATOR=openai needs OPENAI_API_KEY",
            ),
            ({"EMBEDDER": "gemini"}, "EMBEDDER=gemini needs GOOGLE_API_KEY"),
            (
                {"VECTOR_STORE": "pgvector", "USE_JSON_REGISTRY": "true", "DATABASE_URL": PG_URL},
                "it cannot run with USE_JSON_REGISTRY=true",
            ),
            (
                {"VECTOR_STORE": "pgvector", "DATABASE_URL": "sqlite:///x.db"},
                "VECTOR_STORE=pgvector needs PostgreSQL with the pgvector extension",
            ),
            (
                {"EMBEDDER": "sentence-transformers"},
                "EMBEDDER=sentence-transformers needs EMBEDDING_MODEL",
            ),
        ],
    )
    def test_it_stops_naming_the_missing_variable(self, env, expected):
        result = start(**{"GOOGLE_API_KEY": "", "OPENAI_API_KEY": "", "OPENAI_MODEL": "", **env})
        assert result.returncode != 0
        assert expected in result.stderr
        assert "Traceback" not in result.stderr


class TestProductionStartup:
    def test_it_refuses_to_start_without_database_url(self):
        result = start(DEBUG="false", SECRET_KEY=PROD_SECRET, DATABASE_URL="")
        assert result.returncode != 0
        assert "Missing DATABASE_URL: set it in .env or environment" in result.stderr

    def test_it_refuses_to_start_without_secret_key(self):
        result = start(DEBUG="false", SECRET_KEY="", DATABASE_URL=PG_URL)
        assert result.returncode != 0
        assert "Missing SECRET_KEY: set it in .env or environment" in result.stderr

    def test_it_refuses_sqlite_in_production(self):
        result = start(DEBUG="false", SECRET_KEY=PROD_SECRET, DATABASE_URL="sqlite:///x.db")
        assert result.returncode != 0
        assert "production needs PostgreSQL" in result.stderr

    def test_check_deploy_is_clean_with_production_settings(self):
        env = child_env(
            DEBUG="false",
            SECRET_KEY=PROD_SECRET,
            DATABASE_URL=PG_URL,
            ALLOWED_HOSTS="docs.example.com",
        )
        result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
        assert result.returncode == 0, result.stderr + result.stdout
        assert "System check identified no issues" in result.stdout

    def test_development_defaults_run_on_sqlite_with_no_configuration(self):
        result = run_manage(
            "shell",
            "-c",
            "from django.db import connection; print(connection.vendor)",
            env=child_env(DATABASE_URL="", DEBUG=""),
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "sqlite"
