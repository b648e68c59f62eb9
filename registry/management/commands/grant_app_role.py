from __future__ import annotations

import os
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, transaction
from psycopg import sql

from registry.models import Document

ROLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
DML = sql.SQL("SELECT, INSERT, UPDATE, DELETE")


class Command(BaseCommand):
    help = (
        "PostgreSQL only. Create (if needed) the role the running service connects as, and "
        "give it only what the service needs: CONNECT, USAGE on the schema, SELECT/INSERT/"
        "UPDATE/DELETE on the project's tables, USAGE/SELECT on their sequences; nothing "
        "that creates, alters or drops. Run it as the owner, after every migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="The service's role, e.g. docs_app (lower case)")
        parser.add_argument(
            "--password-env",
            metavar="VAR",
            help="Set the role's password from this environment variable (kept off the "
            "command line and out of shell history)",
        )
        parser.add_argument(
            "--print-sql",
            action="store_true",
            help="Print the statements for a DBA to run; change nothing",
        )

    def handle(
        self,
        *args: object,
        role: str,
        password_env: str | None,
        print_sql: bool,
        **options: Any,
    ) -> str:
        if connection.vendor != "postgresql":
            raise CommandError(
                f"grant_app_role needs PostgreSQL; DATABASE_URL points at {connection.vendor}, "
                "which has no roles"
            )
        if not ROLE_RE.match(role):
            raise CommandError(
                f"role name {role!r} must be lower-case letters, digits and '_', "
                "starting with a letter or '_' (at most 63 characters)"
            )
        password = None
        if password_env:
            password = os.environ.get(password_env, "")
            if not password:
                raise CommandError(
                    f"--password-env {password_env}: that variable is empty or unset"
                )
        try:
            # psycopg's own cursor composes psycopg.sql; the wrapper keeps its errors Django's.
            with (
                transaction.atomic(),
                connection.cursor() as cursor,
                connection.wrap_database_errors,
            ):
                plan = Plan(cursor.cursor, role)
                statements = plan.statements(password=None if print_sql else password)
                if print_sql:
                    for statement in statements:
                        self.stdout.write(statement.as_string(cursor.cursor) + ";")
                    if password_env:
                        self.stdout.write(f"-- then set its password in psql: \\password {role}")
                    return ""
                for statement in statements:
                    cursor.cursor.execute(statement)
                problems = plan.problems()
                if problems:
                    raise CommandError(f"role {role} still can: {'; '.join(problems)}")
        except DatabaseError as exc:
            raise CommandError(f"could not grant {role} its privileges: {exc}".strip()) from None
        return (
            f"Role {role} may connect to {plan.database}, read and write {len(plan.tables)} "
            f"tables and use {len(plan.sequences)} sequences in schema {plan.schema}; it "
            f"cannot create, alter or drop tables in {plan.schema}, nor create schemas."
        )


class Plan:
    """What the role must be granted in this database, read from the live catalog."""

    def __init__(self, cursor: Any, role: str) -> None:
        self.cursor = cursor
        self.role = role
        cursor.execute("SELECT current_database(), current_schema(), current_user")
        self.database, self.schema, self.owner = cursor.fetchone()
        if role == self.owner:
            raise CommandError(
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
            raise CommandError(
                f"role {role} is a superuser (or bypasses row security): no grant limits it; "
                "choose another role name"
            )
        self.too_strong = bool(found and found[1])
        # Every table Django manages here (all apps: auth, sessions, admin, registry …)
        # plus the migration log, which the service only reads.
        self.tables = sorted(connection.introspection.django_table_names(only_existing=True))
        if Document._meta.db_table not in self.tables:
            raise CommandError(
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
