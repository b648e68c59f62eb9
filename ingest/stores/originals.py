"""Each document's original bytes, kept through Django's storage API (STORAGES
["documents"]): a folder under data/ by default, any django-storages backend (S3, …)
by setting, which is what several hosts share.

An original is kept under `<fileId>/<sha256>`: a re-ingest of other bytes writes its
own before the registry changes, so the document always has the original of the row
that is committed. The services (ingest/services.py) keep them in step with the rows:

- a new original is written before the row; when the row write fails, it is removed
  again (an original the row already had, the same bytes re-sent, is left alone);
- the original a row no longer names (replaced by other bytes, or its document
  deleted) is removed once the row's change is durable. Should that removal fail, the
  file is left over, never the row without its file: `check_registry` lists such
  leftovers and `--fix` removes them.

Documents imported from the old registry have no original (the old service kept none).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

from registry.records import DocumentRecord

logger = logging.getLogger(__name__)


def original_storage() -> Storage:
    return storages["documents"]


def original_name(record: DocumentRecord) -> str:
    """Where a document's original is kept in the storage."""
    return f"{record.file_id}/{record.sha256}"


@dataclass(frozen=True)
class Kept:
    name: str
    new: bool  # written now (False: the same bytes were kept already)


def keep_original(record: DocumentRecord, data: bytes) -> Kept:
    """Write the original of `record` unless it is kept already."""
    storage = original_storage()
    name = original_name(record)
    if storage.exists(name):
        return Kept(name, new=False)
    saved = storage.save(name, ContentFile(data))
    if saved != name:  # the storage renamed it (a race with the same upload): keep one
        storage.delete(saved)
        return Kept(name, new=False)
    return Kept(name, new=True)


def has_original(record: DocumentRecord) -> bool:
    return bool(record.sha256) and original_storage().exists(original_name(record))


def read_original(record: DocumentRecord) -> bytes | None:
    """The document's original bytes; None when none is kept."""
    storage = original_storage()
    name = original_name(record)
    if not record.sha256 or not storage.exists(name):
        return None
    with storage.open(name, "rb") as original:
        data: bytes = original.read()
        return data


def discard(names: Iterable[str]) -> None:
    """Remove these originals; a failure is logged, not raised (the change they follow is
    already durable; check_registry finds what is left over)."""
    storage = original_storage()
    for name in names:
        try:
            storage.delete(name)
        except Exception:  # any storage backend's error: the file is only left over
            logger.exception("could not remove the original %s; check_registry --fix will", name)


def discard_originals(records: Iterable[DocumentRecord]) -> None:
    discard(original_name(record) for record in records if record.sha256)


def kept_names() -> dict[str, list[str]]:
    """Every kept original: {file_id: [sha256, …]} (for check_registry)."""
    storage = original_storage()
    try:
        folders, _ = storage.listdir("")
    except FileNotFoundError:
        return {}
    return {folder: storage.listdir(folder)[1] for folder in folders}
