from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, transaction

from registry.exceptions import GrantRefused
from registry.grants import ROLE_RE, GrantPlan


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
                plan = GrantPlan(cursor.cursor, role)
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
        except GrantRefused as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(f"could not grant {role} its privileges: {exc}".strip()) from None
        return (
            f"Role {role} may connect to {plan.database}, read and write {len(plan.tables)} "
            f"tables and use {len(plan.sequences)} sequences in schema {plan.schema}; it "
            f"cannot create, alter or drop tables in {plan.schema}, nor create schemas."
        )
