"""The database plumbing under Django's ORM: the PostgreSQL engine (postgresql/), its
pools' fail-fast while the database is down (outage.py), reads on psycopg's native async
pool (async_reads.py) and health probes with a deadline (probes.py). Each module opens
with the limit it works around, what upstream would retire it, and the setting that
turns it off."""
