from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.models import ApiKey


class Command(BaseCommand):
    help = (
        "Create an API key and print it as the last line (it is shown only once). By "
        "default it reads and writes every workspace, as keys did before scopes; "
        "--workspace limits it, --read-only takes away ingest and delete, --same-as "
        "copies another key's scope (to rotate it)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who or what the key is for, e.g. 'search-frontend'")
        parser.add_argument(
            "--workspace",
            action="append",
            dest="workspaces",
            metavar="NAME",
            help="A workspace the key may use; repeat for several. Default: every workspace.",
        )
        parser.add_argument(
            "--read-only",
            action="store_true",
            help="List, read and ask only: no ingest, no delete.",
        )
        parser.add_argument(
            "--same-as",
            metavar="PREFIX",
            help="The workspaces and access of the key with this prefix (dsk_…, as the "
            "admin lists it): its replacement when rotating it.",
        )

    def handle(
        self,
        *args: object,
        name: str,
        workspaces: list[str] | None,
        read_only: bool,
        same_as: str | None,
        **options: object,
    ) -> str:
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("NAME must be 1 to 100 characters")
        api_key = ApiKey(name=name)
        if same_as is not None:
            if workspaces or read_only:
                raise CommandError("--same-as copies the scope: give no --workspace or --read-only")
            _copy_scope(api_key, same_as)
        else:
            api_key.all_workspaces = not workspaces
            api_key.workspaces = [w.strip() for w in workspaces or []]
            api_key.access = ApiKey.Access.READ if read_only else ApiKey.Access.WRITE
        try:
            api_key.clean()
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        raw_key = api_key.set_new_key()
        api_key.save()
        # On stderr, so that KEY=$(manage.py create_api_key NAME) captures the key alone;
        # styled as the success it is (Django colours stderr as an error otherwise).
        self.stderr.write(
            f"Created API key {name!r} ({api_key.prefix}…): {api_key.describe_scope()}. Send "
            "it as the X-API-Key header. It is shown once, below: store it now.",
            style_func=self.style.SUCCESS,
        )
        return raw_key


def _copy_scope(api_key: ApiKey, prefix: str) -> None:
    try:
        old = ApiKey.by_prefix(prefix)
    except LookupError as exc:
        raise CommandError(f"--same-as: {exc}") from None
    api_key.all_workspaces, api_key.workspaces = old.all_workspaces, list(old.workspaces)
    api_key.access = old.access
