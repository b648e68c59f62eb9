"""Domain errors of the registry; config/api.py maps each to one HTTP status."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: the message is safe to show to the caller."""


class DocumentNotFound(RegistryError):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"Document {file_id!r} not found")
        self.file_id = file_id


class RegistryUnavailable(RegistryError):
    """The live registry cannot be read or written (corrupt file, database down)."""


class InvalidRecord(RegistryError):
    """A legacy registry record that cannot be understood."""


class InvalidRegistryFile(RegistryError):
    """A registry file that is not a JSON array of objects."""
