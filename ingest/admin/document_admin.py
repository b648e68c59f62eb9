"""The admin of registry.Document: browse, search, read a document's chunks, add one,
ask a question, delete. It lives in ingest, not beside the model in registry, because
adding, asking and deleting go through ingest's services, the ones the API uses (registry
never imports ingest). Its templates: templates/admin/registry/document/.

The ingestion stack (scipy, aiohttp, pypdf, …) is imported inside the views, not at the
top: every process imports this module at start-up (admin autodiscovery), and it took
0.6 s of each management command's start.
"""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat, truncatechars
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal

from common.pagination import EstimatedCountPaginator
from ingest.models import IngestJob
from registry.audit import actor_of
from registry.backends import get_backend
from registry.models import Document

CHUNKS_PER_PAGE = 20
NAME_SHOWN = 60  # characters of a name or a URL the list shows
URL_SHOWN = 50
SHA256_RE = re.compile(r"[0-9a-f]{64}")


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Documents arrive through the ingestion service (the API, or the add page here), so
    no field can be edited. While the JSON registry is live (a rollback) this table is
    not the registry: every page says so, and adding and deleting are refused."""

    list_display = (
        "name",
        "workspace",
        "num_chunks",
        "size",
        "content_type",
        "origin",
        "created_at",
    )
    list_display_links = ("name",)
    list_filter = ("workspace", "source", "indexed")
    # Names and URLs by any part; ids and checksums whole (get_search_results): a
    # substring match on them read all 100,000 rows' ids for nothing (bench/bench_admin.py).
    search_fields = ("filename", "url")
    search_help_text = "Part of a name or URL, or a whole document id or SHA-256."
    date_hierarchy = "created_at"
    list_per_page = 50
    # No COUNT(*) of the whole table on each page: the "N total" link is off, and the
    # paginator estimates an unfiltered count on PostgreSQL (common/pagination.py).
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # The document page: every field, read-only, with a label and a value people read.
    fields = (
        "filename",
        "file_id",
        "workspace",
        "size_described",
        "num_chunks",
        "indexed",
        "content_type",
        "origin",
        "sha256",
        "created_at",
        "updated_at",
        "audit_trail",
    )
    readonly_fields = fields

    @admin.display(description="audit trail")
    def audit_trail(self, obj: Document) -> str:
        """Who ingested, re-ingested and deleted this id, and when: one query away."""
        events = reverse("admin:registry_auditevent_changelist")
        return format_html('<a href="{}?file_id={}">its events</a>', events, obj.file_id)

    @admin.display(description="name", ordering="filename")
    def name(self, obj: Document) -> str:
        """The list's name column: a long name is cut, whole in its tooltip, so the list
        fits a laptop's screen (1,400 px) without scrolling sideways."""
        return format_html(
            '<span title="{}">{}</span>', obj.filename, truncatechars(obj.filename, NAME_SHOWN)
        )

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj: Document) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="size")
    def size_described(self, obj: Document) -> str:
        return f"{filesizeformat(obj.size_bytes)} ({obj.size_bytes:,} bytes)"

    @admin.display(description="source", ordering="source")
    def origin(self, obj: Document) -> str:
        """An upload says so; a URL document links to its source (http(s) only), its
        address cut to fit the list, whole in the link and its tooltip."""
        if obj.url and obj.url.lower().startswith(("http://", "https://")):
            return format_html(
                '<a href="{}" title="{}" rel="noopener noreferrer">{}</a>',
                obj.url,
                obj.url,
                truncatechars(obj.url, URL_SHOWN),
            )
        return obj.get_source_display()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Document], search_term: str
    ) -> tuple[QuerySet[Document], bool]:
        """Django's search (each word in the name or URL), where a word may also be a
        whole document id or SHA-256."""
        for word in smart_split(search_term):
            if word[0] in "\"'" and word[0] == word[-1] and len(word) > 1:
                word = unescape_string_literal(word)
            match = Q(filename__icontains=word) | Q(url__icontains=word) | Q(file_id=word)
            if SHA256_RE.fullmatch(word.lower()):
                match |= Q(sha256=word.lower())
            queryset = queryset.filter(match)
        return queryset, False

    def has_add_permission(self, request: HttpRequest) -> bool:
        # During a rollback a document added here would go to the JSON registry, which
        # this table does not show: the API adds documents then.
        return get_backend().staff_may_write and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        # While the JSON registry is live this table is not the registry: deleting here
        # would remove vectors that the live registry still cites.
        return get_backend().staff_may_write and super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        _delete(request, [obj.file_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        # The bulk "delete selected" action comes here rather than to delete_model().
        _delete(request, list(queryset.values_list("file_id", flat=True)))

    def get_urls(self) -> list[URLPattern]:
        ask = path(
            "ask/",
            self.admin_site.admin_view(self.ask_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_ask",
        )
        original = path(
            "<path:object_id>/original/",
            self.admin_site.admin_view(self.original_view),
            name=f"{self.opts.app_label}_{self.opts.model_name}_original",
        )
        return [ask, original, *super().get_urls()]

    def original_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The document's original file, as GET /documents/{fileId}/file serves it."""
        from ingest.services import original_response
        from ingest.stores.originals import read_original

        document = self.get_object(request, unquote(object_id))
        if document is None or not self.has_view_permission(request, document):
            raise Http404("No such document")
        record = document.to_record()
        data = read_original(record)
        if data is None:
            raise Http404("No original is kept of this document")
        return original_response(record, data)

    @staticmethod
    def _context(extra: dict[str, Any] | None) -> dict[str, Any]:
        """A page's context with `rollback`, which shows the banner."""
        return {"rollback": not get_backend().staff_may_write, **(extra or {})}

    def _form_page(
        self, request: HttpRequest, template: str, title: str, **extra: Any
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            **self._context(extra),
            "opts": self.opts,
            "title": title,
        }
        return TemplateResponse(request, f"admin/registry/document/{template}", context)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().changelist_view(request, self._context(extra_context))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The document's fields, its chunks as the vector store holds them, a page at a
        time (`?chunks=N`, or the page holding chunk index `?chunk=I`), and whether its
        registries and the store agree. The store is read only for those who may see."""
        extra = self._context(extra_context)
        document = self.get_object(request, unquote(object_id))
        if document is not None and self.has_view_permission(request, document):
            extra.update(_chunks_and_check(request, document))
            extra["job"] = _latest_job(document.file_id)
        return super().change_view(request, object_id, form_url, extra)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # (No delete page needs the banner: during a rollback deleting answers 403.)
        return super().history_view(request, object_id, self._context(extra_context))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Upload a file or give a URL; the ingestion service of POST /ingest/file and
        /ingest/url indexes it. Its errors are the form's; a document already holding
        the same content is where the page leads."""
        from ingest.admin.forms import AddDocumentForm

        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AddDocumentForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            document = _ingest(request, form)
            if document is not None:
                return self._added(request, *document)
        return self._form_page(
            request, "add.html", "Add document", form=form, **(extra_context or {})
        )

    def _added(self, request: HttpRequest, file_id: str, created: bool) -> HttpResponse:
        document = Document.objects.get(file_id=file_id)
        if created:
            messages.success(
                request, f"Added {document.filename}: {document.num_chunks} chunk(s) indexed."
            )
        else:
            messages.info(
                request,
                f"Already present: {document.filename} holds the same content in workspace "
                f"{document.workspace!r}. Nothing was added.",
            )
        return HttpResponseRedirect(reverse("admin:registry_document_change", args=[document.pk]))

    def ask_view(self, request: HttpRequest) -> HttpResponse:
        """A question and its answer with numbered sources, through the service of
        POST /ask; each source links to its document's page, at its chunk."""
        from ingest.admin.forms import AskForm

        if not self.has_view_permission(request):
            raise PermissionDenied
        form = AskForm(request.POST or None, workspaces=_workspaces())
        answer = None
        if request.method == "POST" and form.is_valid():
            answer = _answer(form)
        return self._form_page(request, "ask.html", "Ask a question", form=form, answer=answer)


def _latest_job(file_id: str) -> Any:
    """The document's newest background job, if it ever had one."""
    return IngestJob.objects.defer("data").filter(file_id=file_id).order_by("-created_at").first()


def _chunks_and_check(request: HttpRequest, document: Document) -> dict[str, Any]:
    from ingest.exceptions import VectorStoreError
    from ingest.maintenance.consistency import check_document
    from ingest.stores import get_vector_store
    from registry.exceptions import RegistryError

    try:
        store = get_vector_store()
        chunks = store.chunk_texts(document.file_id)
        check = check_document(document.file_id)
    except (RegistryError, VectorStoreError) as exc:
        return {"store_error": str(exc)}
    original = _original_link(document)
    rows = [
        {
            "index": c.index,
            "context": c.context,
            "text": c.text,
            "length": len(c.text),
            "pages": pages_label(c.pages),
            "page_link": _page_link(original, document.content_type, c.pages),
        }
        for c in chunks
    ]
    page_number = request.GET.get("chunks")
    wanted = request.GET.get("chunk", "")
    indexes = [chunk.index for chunk in chunks]
    if wanted.isdecimal() and len(wanted) < 10 and int(wanted) in indexes:
        # Indexes need not be 0, 1, 2, … (an imported document's may have gaps).
        page_number = str(indexes.index(int(wanted)) // CHUNKS_PER_PAGE + 1)
    page = Paginator(rows, CHUNKS_PER_PAGE).get_page(page_number)
    return {
        "chunk_page": page,
        "check": check,
        "store_name": store.short_label,
        "original": original,
        "paged": any(c.pages for c in chunks),
    }


def pages_label(pages: tuple[int, int] | None) -> str:
    """ "p. 6", "pp. 6-7" (an en dash), or "" for a chunk of a format without pages."""
    if pages is None:
        return ""
    first, last = pages
    return f"p. {first}" if first == last else f"pp. {first}\u2013{last}"


def _original_link(document: Document) -> str | None:
    """The admin's link to the document's original, None when none is kept."""
    from ingest.stores.originals import has_original

    if not has_original(document.to_record()):
        return None
    return reverse("admin:registry_document_original", args=[document.pk])


def _page_link(original: str | None, content_type: str, pages: tuple[int, int] | None) -> str:
    """A PDF's original opened at the chunk's first page (browsers' #page=N)."""
    if original is None or pages is None or content_type != "application/pdf":
        return ""
    return f"{original}#page={pages[0]}"


def _ingest(request: HttpRequest, form: Any) -> tuple[str, bool] | None:
    """Run the ingestion service on the form's file or URL: (file_id, created), or None
    with the service's error added to the form."""
    from ingest.exceptions import (
        ContentConflict,
        EmbedderUnavailable,
        IngestError,
        VectorStoreError,
    )
    from ingest.preparing import Upload
    from ingest.services import document_ingest, document_ingest_url
    from registry.exceptions import InvalidWorkspace, RegistryError

    upload = form.cleaned_data["file"]
    workspace = form.cleaned_data["workspace"]
    actor = actor_of(request)
    try:
        if upload:
            sent = Upload(
                data=upload.read(),
                filename=upload.name or "",
                workspace=workspace,
                content_type=upload.content_type or "",
                charset=upload.charset,
            )
            result = async_to_sync(document_ingest)(sent, actor=actor)
        else:
            result = async_to_sync(document_ingest_url)(
                url=form.cleaned_data["url"], workspace=workspace, actor=actor
            )
    except InvalidWorkspace as exc:
        form.add_error("workspace", str(exc))
    except (ContentConflict, EmbedderUnavailable, VectorStoreError, RegistryError) as exc:
        form.add_error(None, str(exc))
    except IngestError as exc:  # the document itself: its type, size, text or address
        form.add_error("file" if upload else "url", str(exc))
    else:
        return result.document.file_id, result.created
    return None


def _workspaces() -> list[str]:
    """The workspaces the live registry holds documents in."""
    return get_backend().workspaces()


def _answer(form: Any) -> dict[str, Any] | None:
    from ingest.answers.asking import answer_question
    from ingest.answers.extractive import NO_ANSWER
    from ingest.exceptions import IngestError
    from registry.exceptions import RegistryError

    try:
        answer = async_to_sync(answer_question)(
            question=form.cleaned_data["q"],
            workspace=form.cleaned_data["workspace"],
            top_k=form.cleaned_data["k"],
        )
    except (IngestError, RegistryError) as exc:
        form.add_error(None, str(exc))
        return None
    documents = {
        document.file_id: document
        for document in Document.objects.filter(file_id__in={s.file_id for s in answer.sources})
    }
    sources = []
    for source in answer.sources:
        document = documents.get(source.file_id)
        link = page_link = None
        if document is not None:
            change = reverse("admin:registry_document_change", args=[document.pk])
            link = f"{change}?chunk={source.chunk_index}#chunk-{source.chunk_index}"
            original = _original_link(document) if source.pages else None
            page_link = _page_link(original, document.content_type, source.pages)
        cited = f"[{source.number}]" in answer.answer
        sources.append(
            {
                "source": source,
                "link": link,
                "cited": cited,
                "pages": pages_label(source.pages),
                "page_link": page_link,
            }
        )
    found = bool(answer.sources) or answer.answer != NO_ANSWER
    return {"text": answer.answer, "sources": sources, "found": found}


def _delete(request: HttpRequest, file_ids: list[str]) -> None:
    """Delete through the service, which removes the vectors too; the audit trail names
    the staff user."""
    from ingest.services import document_delete_many

    document_delete_many(file_ids=file_ids, actor=actor_of(request))
