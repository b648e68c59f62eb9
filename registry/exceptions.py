"""Domain errors of the registry; config/api.py maps each to one HTTP status."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: the message is safe to show to the caller."""


class DocumentNotFound(RegistryError):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"Document {file_id!r} not found")
        self.file_id = file_id


class InvalidWorkspace(RegistryError):
    def __init__(self, workspace: str, *, longest: int) -> None:
        super().__init__(
            f"Invalid workspace {workspace!r}: use 1-{longest} letters, digits, '_', '.' or "
            "'-', starting with a letter or digit"
        )


class InvalidFileId(RegistryError):
    def __init__(self, file_id: str, *, longest: int) -> None:
        super().__init__(
            f"Invalid fileId {file_id!r}: use 1-{longest} letters, digits, '_', '.', ':' or "
            "'-', starting with a letter or digit"
        )


class RegistryUnavailable(RegistryError):
    """The live registry cannot be read or written (corrupt file, database down)."""


# What clients are told while the database is away (its host and error stay in the log).
DATABASE_UNAVAILABLE = "The database is unavailable; try again shortly"


class InvalidRecord(RegistryError):
    """A legacy registry record that cannot be understood."""


class InvalidRegistryFile(RegistryError):
    """A registry file that is not a JSON array of objects."""


class MissingTable(RegistryError):
    """The database has no `documents` table yet: migrate has not run."""


class GrantRefused(RegistryError):
    """`grant_app_role` will not grant this role: it is the owner, a superuser, or the
    database is not migrated."""


class AccessDenied(RegistryError):
    """403: the API key may not do this. It names what is missing, never what exists."""


class ReadOnlyKey(AccessDenied):
    def __init__(self, doing: str) -> None:
        super().__init__(f"This API key is read-only: {doing} needs the write permission")


class WorkspaceOutOfScope(AccessDenied):
    def __init__(self, workspace: str) -> None:
        super().__init__(f"This API key has no access to workspace {workspace!r}")


class FileIdTaken(RegistryError):
    """409: a client-chosen fileId another document holds: one outside the key's
    workspaces, or one created while this upload was being indexed. The answer does not
    say which document, nor where."""

    def __init__(self, file_id: str) -> None:
        super().__init__(f"fileId {file_id!r} cannot be used: choose another")


class WorkspaceRequired(RegistryError):
    """400: a key of several workspaces ingests without naming one."""

    def __init__(self, workspaces: list[str]) -> None:
        super().__init__(
            "Name the workspace to ingest into: this API key writes to "
            + ", ".join(repr(name) for name in workspaces)
        )
