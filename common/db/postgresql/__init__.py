"""Django's PostgreSQL backend, failing fast while the database is down (base.py)."""

# The ENGINE of a PostgreSQL DATABASE_URL: this package.
POSTGRESQL = __name__
