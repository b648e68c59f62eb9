"""A paginator that does not count a large table on every page view."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Below this many rows (by the estimate) the count is exact: it is cheap, and a small
# table is where a wrong count would show.
EXACT_BELOW = 20_000


def estimated_rows(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows in the queryset's table, as its planner makes
    it: the rows per page at the last ANALYZE times the pages the table has now, so rows
    added since are counted. None on other databases, or for a table never analysed."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples, relpages, "
            "pg_relation_size(oid) / current_setting('block_size')::int "
            "FROM pg_class WHERE oid = %s::regclass",
            [connection.ops.quote_name(queryset.model._meta.db_table)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    rows, pages_then, pages_now = row
    if rows < 0 or pages_then <= 0:  # never analysed (or vacuumed)
        return None
    return int(rows / pages_then * pages_now)


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered queryset by PostgreSQL's estimate once the table is large:
    `COUNT(*)` reads the whole table (100,000 rows: tens of milliseconds on every page
    view). A filtered queryset is counted exactly. The page links can then be a little
    off; the last page may hold fewer rows than it should, or none."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            estimate = estimated_rows(queryset)
            if estimate is not None and estimate >= EXACT_BELOW:
                return estimate
        return super().count
