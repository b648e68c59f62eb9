"""Writes of documents: one path that stores a document (`document_store`) and one that
deletes documents (`document_delete_many`), called by the API, the admin, the job runner
and the commands alike.

Each is one unit of work. The document's registry row and its chunks are written, or
deleted, through the vector store's unit of work (ingest/stores/base.py), which keeps
the two in step; in the same database transaction as the row, the document's pending
background jobs end (replaced, or deleted), and the audit event names who changed it
(registry/audit.py). So where the registry is the database, the row, the jobs and the
event commit together: an event the database refuses undoes the change (the store puts
its chunks back), and no change commits without its event.

Where the registry is the JSON file (a rollback), a file cannot join a transaction. The
event is inserted before the file is replaced, in a transaction that commits after it:
an event the database refuses stops the write before the file changes, and a file that
cannot be written rolls the event back. The one step left after the file is replaced
is that commit: should it fail, the change stands (the registry and the store agree),
its event is lost, and the service log says so at ERROR.

CPU-heavy steps (parsing, embedding) run in worker threads, off the event loop; the unit
of work runs on the request's sync thread, where its database connection lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import DatabaseError, transaction
from django.http import HttpResponse
from django.utils.http import content_disposition_header

from ingest.exceptions import OriginalNotKept
from ingest.models import DELETED, REPLACED, IngestJob
from ingest.preparing import Upload, admit, document_record, fetch_upload, prepare
from ingest.stores import get_vector_store
from ingest.stores.base import Removed, StoredChunks
from ingest.stores.originals import discard, discard_originals, keep_original, read_original
from registry import audit
from registry.audit import Actor
from registry.backends import get_backend
from registry.backends.base import OnDeleted, RegistryBackend
from registry.models import AuditEvent, new_file_id
from registry.records import DocumentRecord
from registry.scopes import EVERYTHING, Scope
from registry.selectors import document_get

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """What an ingest came to."""

    document: DocumentRecord
    created: bool  # a new document; False: re-ingested, or these bytes were already held
    copy_of: str | None = None  # the document that held these bytes when a new id was asked


class _Journal:
    """The audit events of one write, inserted when the registry tells of the documents
    it changes (RegistryBackend's Journal), with what else ends with them."""

    def __init__(self, action: str, actor: Actor, *, then: Callable[[], None] | None = None):
        self.action = action
        self.actor = actor
        self.then = then
        self.told = False

    def __call__(self, documents: list[DocumentRecord]) -> None:
        audit.record(self.action, documents, self.actor)
        if self.then is not None:
            self.then()
        self.told = True


@contextlib.contextmanager
def _one_transaction(registry: RegistryBackend, journal: _Journal) -> Iterator[None]:
    """A database transaction around a write and its events. On the JSON registry, once
    the file is replaced the change stands: a database failing after that (the commit)
    loses the events, which is logged, rather than undoing half the change."""
    try:
        with transaction.atomic():
            yield
    except DatabaseError:
        if registry.in_database or not journal.told:
            raise
        logger.exception(
            "%s stands in %s, but its audit event (by %s) could not be recorded",
            journal.action,
            registry.label,
            journal.actor.name,
        )


def document_store(
    *,
    record: DocumentRecord,
    chunks: StoredChunks,
    actor: Actor,
    replaces: DocumentRecord | None,
    copy: bool = False,
    job: IngestJob | None = None,
    fence: Callable[[], None] | None = None,
    original: bytes | None = None,
) -> Stored:
    """Store a document: its registry row, its chunks and its original (the bytes
    uploaded, `original`; None: left as kept), in one unit of work, ending its other
    pending jobs and recording who stored it. The original is written first and
    removed again should the row not be written; the one the row named before (other
    bytes) is removed once the new row is durable (ingest/stores/originals.py).

    `replaces`: the document of `record.file_id` as it is now, whose row is replaced (a
    re-ingest, or a document listed before its chunks filled in). None: the row is new,
    unless a document of the workspace already holds these bytes (an identical upload
    won the race; these chunks are not kept) or, with `copy`, all the same. `job`: the
    background job storing it, which succeeds with it. `fence`: raises, inside the
    transaction, when the write must not happen (a job no longer its worker's)."""
    registry = get_backend()
    reingest = replaces is not None and not replaces.awaiting_chunks
    action = AuditEvent.Action.REINGEST if reingest else AuditEvent.Action.INGEST

    def end_jobs() -> None:
        pending = IngestJob.objects.exclude(pk=job.pk) if job else IngestJob.objects.all()
        pending.cancel_for([record.file_id], detail=REPLACED)  # older uploads: this one wins
        if job is not None:
            IngestJob.objects.filter(pk=job.pk).succeed(chunks=record.num_chunks)

    journal = _Journal(action, actor, then=end_jobs)

    def write_row() -> tuple[DocumentRecord, bool]:
        with _one_transaction(registry, journal):
            if fence is not None:
                fence()
            if replaces is None:
                return registry.create(record, copy=copy, journal=journal)
            return registry.upsert(record, journal=journal), True
        return record, True  # only after the JSON file was written and its event lost

    new = keep_original(record, original) if original is not None else None
    try:
        stored, kept = get_vector_store().write_document(chunks, write_row)
    except BaseException:
        if new is not None and new.new:
            discard([new.name])
        raise
    if new is not None and new.new and not kept:  # an identical upload's row won
        discard([new.name])
    if kept and replaces is not None and replaces.sha256 != record.sha256:
        discard_originals([replaces])
    return Stored(stored, created=kept and replaces is None)


async def document_ingest(upload: Upload, *, actor: Actor, scope: Scope = EVERYTHING) -> Stored:
    """Index a document now, or return the one already holding the same bytes in this
    workspace (`created` False; one still awaiting its background job is indexed now).

    With a `file_id` the client chose, that document is re-ingested: an existing one's
    chunks and row are replaced (its created_at kept), a new one is created under that
    id (`copy_of` names the document already holding the same bytes, if one does).
    """
    admitted = await admit(upload, scope=scope)
    same = admitted.same_content
    if same is not None and not same.awaiting_chunks:
        return Stored(same, created=False)
    # A document still awaiting its background job: these bytes are indexed now, in its
    # place (the job is cancelled when the row is written), as for one already there.
    previous = admitted.previous or same
    file_id = previous.file_id if previous else upload.file_id or new_file_id()
    prepared = await asyncio.to_thread(prepare, admitted.upload)
    extracted = prepared.cut.extracted
    record = document_record(
        admitted.upload,
        file_id=file_id,
        sha256=admitted.sha256,
        content_type=extracted.content_type,
        title=extracted.title,
        chunks=len(prepared.cut.texts),
        created_at=previous.created_at if previous else None,
    )
    await asyncio.to_thread(get_vector_store)  # may load a model: off the loop
    store = sync_to_async(document_store, thread_sensitive=True)
    stored = await store(
        record=record,
        chunks=prepared.cut.chunks(record, prepared.vectors),
        actor=actor,
        replaces=previous,
        copy=admitted.copy_of is not None,
        original=admitted.upload.data,
    )
    return dataclasses.replace(stored, copy_of=admitted.copy_of)


async def document_ingest_url(
    *,
    url: str,
    workspace: str | None,
    actor: Actor,
    filename: str | None = None,
    file_id: str | None = None,
    scope: Scope = EVERYTHING,
) -> Stored:
    """Fetch a public http(s) URL and index it, as an upload."""
    upload = await fetch_upload(
        url=url, filename=filename, workspace=workspace, file_id=file_id, scope=scope
    )
    return await document_ingest(upload, actor=actor, scope=scope)


def document_delete_many(
    *,
    file_ids: Collection[str],
    actor: Actor,
    scope: Scope = EVERYTHING,
    registry: RegistryBackend | None = None,
) -> Removed:
    """Delete the documents of these ids that exist, their registry rows and their
    chunks, cancelling their background jobs and recording who deleted them. Unknown
    ids, and ids of documents the scope cannot see, are skipped. `registry`: the one to
    delete from, if not the live one (import_registry --sync: the database)."""
    scope.require_write("deleting")
    registry = registry or get_backend()
    if scope.workspaces is not None:
        found = registry.get_many(file_ids)
        file_ids = [file_id for file_id, d in found.items() if scope.sees(d.workspace)]
    deleting = list(file_ids)

    def cancel_jobs() -> None:  # a job finding its document gone would be cancelled too
        IngestJob.objects.cancel_for(deleting, detail=DELETED)

    journal = _Journal(AuditEvent.Action.DELETE, actor, then=cancel_jobs)

    def delete_rows(
        file_ids: Collection[str], *, on_deleted: OnDeleted | None = None
    ) -> list[DocumentRecord]:
        return registry.delete_many(file_ids, on_deleted=on_deleted, journal=journal)

    store = get_vector_store()
    if registry.in_database:  # its delete is one transaction, the events inside it
        removed = store.remove_documents(deleting, delete_rows)
    else:
        removed = Removed([], 0)
        with _one_transaction(registry, journal):
            removed = store.remove_documents(deleting, delete_rows)
    discard_originals(removed.documents)  # once their rows' deletion is durable
    return removed


async def adocument_delete_many(
    *, file_ids: Collection[str], actor: Actor, scope: Scope = EVERYTHING
) -> Removed:
    # On the request's sync thread: the rows are the database's (and the store's, for
    # pgvector), and deleting them is one unit of work.
    delete = sync_to_async(document_delete_many, thread_sensitive=True)
    return await delete(file_ids=file_ids, actor=actor, scope=scope)


def document_reextract(record: DocumentRecord, *, actor: Actor) -> Stored | None:
    """Read a document's kept original again with today's readers, and store what they
    make of it in place of its chunks (its id, name, workspace and first ingest kept):
    `reindex --reextract`. None when no original is kept (a document imported from the
    old registry). The reader's refusals (IngestError) leave the document as it was."""
    data = read_original(record)
    if data is None:
        return None
    upload = Upload(
        data=data,
        filename=record.filename,
        workspace=record.workspace,
        content_type=record.content_type,
        source=record.source,
        url=record.url,
        file_id=record.file_id,
    )
    prepared = prepare(upload)
    extracted = prepared.cut.extracted
    renewed = document_record(
        upload,
        file_id=record.file_id,
        sha256=record.sha256,
        content_type=extracted.content_type,
        chunks=len(prepared.cut.texts),
        created_at=record.created_at,
    )
    return document_store(
        record=dataclasses.replace(renewed, filename=record.filename),
        chunks=prepared.cut.chunks(record, prepared.vectors),
        actor=actor,
        replaces=record,
    )


async def document_original(*, file_id: str, scope: Scope) -> tuple[DocumentRecord, bytes]:
    """The document and its original bytes: DocumentNotFound as for reading it,
    OriginalNotKept when none was kept."""
    record = await document_get(file_id=file_id, scope=scope)
    data = await asyncio.to_thread(read_original, record)
    if data is None:
        raise OriginalNotKept(file_id)
    return record, data


# Shown in the browser where they are: a PDF opens at a cited page (#page=N). Anything
# else is downloaded, and every original is sandboxed: an uploaded HTML page must never
# run as this site.
_SHOWN_INLINE = ("application/pdf", "image/png", "image/jpeg")


def original_response(record: DocumentRecord, data: bytes) -> HttpResponse:
    """The original as a response, named as the document is listed."""
    content_type = record.content_type or "application/octet-stream"
    response = HttpResponse(data, content_type=content_type)
    disposition = content_disposition_header(content_type not in _SHOWN_INLINE, record.filename)
    if disposition:
        response["Content-Disposition"] = disposition
    response["Content-Security-Policy"] = "sandbox"
    return response
