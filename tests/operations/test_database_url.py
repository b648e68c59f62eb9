"""DATABASE_URL forms operators hold today, and the pool settings they map to."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import database_config, normalise_database_url

BASE = Path("/srv/app")


class TestNormalise:
    def test_it_drops_the_asyncpg_driver_and_keeps_the_query(self):
        url = "postgresql+asyncpg://user:pw@ep-x.neon.tech/db?sslmode=require"
        assert (
            normalise_database_url(url) == "postgresql://user:pw@ep-x.neon.tech/db?sslmode=require"
        )

    def test_it_drops_the_psycopg_driver(self):
        assert normalise_database_url("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"

    def test_it_translates_asyncpg_ssl_to_sslmode(self):
        assert normalise_database_url("postgresql+asyncpg://u@h/db?ssl=require") == (
            "postgresql://u@h/db?sslmode=require"
        )

    def test_it_keeps_absolute_sqlite_paths(self):
        assert normalise_database_url("sqlite:////var/lib/app/db.sqlite3") == (
            "sqlite:////var/lib/app/db.sqlite3"
        )


class TestPostgresConfig:
    @pytest.mark.parametrize(
        "url",
        [
            "postgresql+asyncpg://neon:s3cret@ep-cool-1.eu.aws.neon.tech/appdb?sslmode=require",
            "postgresql+psycopg://neon:s3cret@ep-cool-1.eu.aws.neon.tech/appdb?sslmode=require",
            "postgres://neon:s3cret@ep-cool-1.eu.aws.neon.tech/appdb?sslmode=require",
            "postgresql://neon:s3cret@ep-cool-1.eu.aws.neon.tech/appdb?sslmode=require",
        ],
    )
    def test_every_postgres_form_gives_the_same_connection(self, url):
        config = database_config(url, base_dir=BASE)
        assert config["ENGINE"] == "common.db.postgresql"
        assert (config["USER"], config["PASSWORD"]) == ("neon", "s3cret")
        assert config["HOST"] == "ep-cool-1.eu.aws.neon.tech"
        assert config["NAME"] == "appdb"
        assert config["OPTIONS"]["sslmode"] == "require"

    def test_query_options_reach_psycopg(self):
        config = database_config(
            "postgresql://u:p@h:6543/db?sslmode=verify-full&channel_binding=require"
            "&connect_timeout=12&application_name=docs",
            base_dir=BASE,
        )
        options = config["OPTIONS"]
        assert options["sslmode"] == "verify-full"
        assert options["channel_binding"] == "require"
        assert options["connect_timeout"] == 12
        assert options["application_name"] == "docs"
        assert config["PORT"] == 6543

    def test_percent_encoded_password_is_decoded(self):
        config = database_config("postgresql://u:p%40ss%2Fw@h/db", base_dir=BASE)
        assert config["PASSWORD"] == "p@ss/w"

    def test_pool_maps_size_overflow_and_recycle(self):
        config = database_config(
            "postgresql://u@h/db", base_dir=BASE, pool_size=7, max_overflow=3, pool_recycle=120
        )
        pool = config["OPTIONS"]["pool"]
        assert pool["min_size"] == 7
        assert pool["max_size"] == 10
        assert pool["max_lifetime"] == 120
        assert config["CONN_MAX_AGE"] == 0
        assert config["CONN_HEALTH_CHECKS"] is True
        assert config["OPTIONS"]["connect_timeout"] == 5

    def test_a_dead_network_is_given_up_on_after_the_network_timeout(self):
        """libpq's TCP user timeout and keepalives on every connection (a query into a
        dropped link fails after DB_NETWORK_TIMEOUT instead of the kernel's 15 minutes),
        unless the URL sets its own; a real connection accepts them (test_hosts.py cuts
        a link under them)."""
        options = database_config("postgresql://u@h/db", base_dir=BASE, network_timeout=4)[
            "OPTIONS"
        ]
        assert (options["tcp_user_timeout"], options["keepalives_idle"]) == (4000, 4)
        assert options["keepalives"] == 1
        own = database_config(
            "postgresql://u@h/db?tcp_user_timeout=30000&keepalives=0", base_dir=BASE
        )["OPTIONS"]
        assert (own["tcp_user_timeout"], own["keepalives"]) == (30000, 0)

    def test_without_pool_server_side_cursors_are_off(self):
        config = database_config("postgresql://u@h-pooler/db", base_dir=BASE, pool=False)
        assert "pool" not in config["OPTIONS"]
        assert config["DISABLE_SERVER_SIDE_CURSORS"] is True
        assert config["CONN_HEALTH_CHECKS"] is True


class TestSqliteConfig:
    def test_relative_path_is_under_the_project(self):
        config = database_config("sqlite:///data/db.sqlite3", base_dir=BASE)
        assert config["ENGINE"] == "django.db.backends.sqlite3"
        assert config["NAME"] == "/srv/app/data/db.sqlite3"

    def test_absolute_path_is_kept(self):
        config = database_config("sqlite:////var/lib/docs/db.sqlite3", base_dir=BASE)
        assert config["NAME"] == "/var/lib/docs/db.sqlite3"
        assert "OPTIONS" not in config or "pool" not in config["OPTIONS"]


class TestMalformedUrls:
    @pytest.mark.parametrize(
        "url, fragment",
        [
            ("mongodb://h/db", "could not be parsed (scheme 'mongodb')"),
            ("postgresql://u@h:notaport/db", "could not be parsed"),
            ("not a url", "could not be parsed"),
            ("mysql://u@h/db", "PostgreSQL and SQLite only"),
            ("postgresql://u@h", "names no database"),
        ],
    )
    def test_it_names_the_variable_and_what_it_expected(self, url, fragment):
        with pytest.raises(ImproperlyConfigured) as excinfo:
            database_config(url, base_dir=BASE)
        assert "DATABASE_URL" in str(excinfo.value)
        assert fragment in str(excinfo.value)


class TestLiveConnection:
    def test_the_operators_asyncpg_url_connects_unchanged_through_the_pool(self):
        from django.db import connection

        from tests.support.processes import child_env, postgres_url, run_manage

        if connection.vendor != "postgresql":
            pytest.skip("runs in the PostgreSQL pass of the suite")
        url = postgres_url(name="postgres", query="sslmode=disable&application_name=probe").replace(
            "postgresql://", "postgresql+asyncpg://", 1
        )
        code = (
            "from django.db import connection\n"
            "with connection.cursor() as c:\n"
            "    c.execute('select current_setting(%s)', ['application_name'])\n"
            "    print(c.fetchone()[0], connection.pool is not None, connection.pool.max_size)"
        )
        result = run_manage("shell", "-c", code, env=child_env(DATABASE_URL=url, DB_POOL_SIZE="2"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "probe True 7"
