from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from registry.models import ApiKey


class Command(BaseCommand):
    help = "Create an API key and print it as the last line (it is shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who or what the key is for, e.g. 'search-frontend'")

    def handle(self, *args: object, name: str, **options: object) -> str:
        name = name.strip()
        if not name or len(name) > 100:
            raise CommandError("NAME must be 1 to 100 characters")
        api_key = ApiKey(name=name)
        raw_key = api_key.set_new_key()
        api_key.save()
        # On stderr, so that KEY=$(manage.py create_api_key NAME) captures the key alone;
        # styled as the success it is (Django colours stderr as an error otherwise).
        self.stderr.write(
            f"Created API key {name!r} ({api_key.prefix}…). Send it as the X-API-Key header. "
            "It is shown once, below: store it now.",
            style_func=self.style.SUCCESS,
        )
        return raw_key
