"""What the service's PostgreSQL role may do: `grant_app_role`'s plan, read from the live
catalog (the database, the schema, the tables Django manages and their sequences), and
the check, after granting, that the role can do nothing more.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from psycopg import sql

from registry.exceptions import GrantRefused
from registry.models import Document

ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DML = sql.SQL("SELECT, INSERT, UPDATE, DELETE")


class GrantPlan:
    """What the role must be granted in this database, read from the live catalog."""

    def __init__(self, cursor: Any, role: str) -> None:
        self.cursor = cursor
        self.role = role
        cursor.execute("SELECT current_database(), current_schema(), current_user")
        self.database, self.schema, self.owner = cursor.fetchone()
        if role == self.owner:
            raise GrantRefused(
                f"{role} is the role running this command, the owner that migrations run as; "
                "the service needs a role of its own"
            )
        cursor.execute(
            "SELECT rolsuper OR rolbypassrls, rolcreatedb OR rolcreaterole "
            "FROM pg_roles WHERE rolname = %s",
            [role],
        )
        found = cursor.fetchone()
        self.exists = found is not None
        if found and found[0]:
            raise GrantRefused(
                f"role {role} is a superuser (or bypasses row security): no grant limits it; "
                "choose another role name"
            )
        self.too_strong = bool(found and found[1])
        # Every table Django manages here (all apps: auth, sessions, admin, registry …)
        # plus the migration log, which the service only reads.
        self.tables = sorted(connection.introspection.django_table_names(only_existing=True))
        if Document._meta.db_table not in self.tables:
            raise GrantRefused(
                f"the database {self.database} has no {Document._meta.db_table} table: run "
                "`python manage.py migrate` as the owner first, then grant"
            )
        self.sequences = sorted(
            sequence["name"]
            for table in self.tables
            for sequence in connection.introspection.get_sequences(cursor, table)
        )

    def statements(self, *, password: str | None) -> list[sql.Composable]:
        role = sql.Identifier(self.role)
        schema = sql.Identifier(self.schema)
        attributes: sql.Composable = sql.SQL(
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT"
        )
        if password is not None:
            attributes = sql.SQL("{} PASSWORD {}").format(attributes, sql.Literal(password))
        statements: list[sql.Composable] = []
        if not self.exists:
            statements.append(sql.SQL("CREATE ROLE {} {}").format(role, attributes))
        elif password is not None or self.too_strong:
            statements.append(sql.SQL("ALTER ROLE {} {}").format(role, attributes))
        statements += [
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(self.database), role
            ),
            sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(
                sql.Identifier(self.database), role
            ),
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role),
            sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema, role),
        ]
        if self._public_may_create():
            # The default before PostgreSQL 15, kept by upgraded databases: every role,
            # ours included, could create tables in the schema.
            statements.append(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema))
        # Start from nothing, so a rerun also takes back TRUNCATE, REFERENCES, TRIGGER or
        # anything granted by hand since.
        statements.append(
            sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, role)
        )
        statements.append(
            sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(schema, role)
        )
        if self.tables:
            statements.append(
                sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                    DML, sql.SQL(", ").join(map(sql.Identifier, self.tables)), role
                )
            )
        statements.append(
            sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(
                sql.Identifier("django_migrations"), role
            )
        )
        if self.sequences:
            statements.append(
                sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, self.sequences)), role
                )
            )
        return statements

    def _public_may_create(self) -> bool:
        self.cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace, aclexplode(nspacl) AS acl "
            "WHERE nspname = %s AND acl.grantee = 0 AND acl.privilege_type = 'CREATE')",
            [self.schema],
        )
        return self.cursor.fetchone()[0]

    def problems(self) -> list[str]:
        """What the role can still do beyond its grants, checked after granting."""
        self.cursor.execute(
            "SELECT has_schema_privilege(%(role)s, %(schema)s, 'CREATE'), "
            "has_database_privilege(%(role)s, current_database(), 'CREATE'), "
            "pg_has_role(%(role)s, %(owner)s, 'USAGE')",
            {"role": self.role, "schema": self.schema, "owner": self.owner},
        )
        create_in_schema, create_in_database, acts_as_owner = self.cursor.fetchone()
        problems = []
        if create_in_schema:
            problems.append(f"create tables in schema {self.schema}")
        if create_in_database:
            problems.append(f"create schemas in database {self.database}")
        if acts_as_owner:
            problems.append(
                f"act as the owner {self.owner} (it is a member): "
                f"REVOKE {self.owner} FROM {self.role}"
            )
        return problems
