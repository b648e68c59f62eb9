from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from registry.models import ApiKey


class Command(BaseCommand):
    help = (
        "Revoke the API key with this prefix (dsk_…, as the admin and create_api_key show "
        "it): it answers 403 from then on, in the other processes within "
        "API_KEY_CACHE_SECONDS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="The key's prefix, e.g. dsk_AbCdEfGh")

    def handle(self, *args: object, prefix: str, **options: object) -> None:
        try:
            api_key = ApiKey.by_prefix(prefix)
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        if api_key.is_revoked:
            self.stdout.write(f"{api_key} was already revoked on {api_key.revoked_at:%Y-%m-%d}.")
            return
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])  # post_save: this process forgets it
        self.stdout.write(self.style.SUCCESS(f"Revoked {api_key} ({api_key.describe_scope()})."))
