"""What a request may see and change: the workspaces and the access of its API key.

One `Scope` per request (registry.auth.scope_of): the selectors, the services and the
jobs take it, so no view decides access. The rules:

- A document or a job of a workspace outside the scope is not found (404), exactly as
  one that does not exist: a key learns nothing of other workspaces.
- A read (list, ask, jobs) naming a workspace outside the scope is refused (403): the
  answer is the same whether that workspace exists or not. `*` means every workspace of
  the scope. No workspace at all means `default` for a key of every workspace (the old
  service's behaviour), and all of its own for a key limited to some.
- A write (ingest, delete) with a read-only key is refused (403), naming the permission.
  An ingest without a workspace goes to `default` when the key may write there, else to
  the key's one workspace; a key of several must name one (400).
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.exceptions import ReadOnlyKey, WorkspaceOutOfScope, WorkspaceRequired
from registry.records import ALL_WORKSPACES, DEFAULT_WORKSPACE, check_workspace

_DEFAULT = frozenset((DEFAULT_WORKSPACE,))


@dataclass(frozen=True, slots=True)
class Scope:
    # None: every workspace, today's and tomorrow's.
    workspaces: frozenset[str] | None = None
    can_write: bool = True

    def sees(self, workspace: str) -> bool:
        return self.workspaces is None or workspace in self.workspaces

    def reads(self, asked: str | None) -> frozenset[str] | None:
        """The workspaces a list, a search or the jobs' list covers (None: every one):
        `asked` is a workspace, `*`, or None when the client named none."""
        if asked == ALL_WORKSPACES:
            return self.workspaces
        if asked is None:
            return _DEFAULT if self.workspaces is None else self.workspaces
        check_workspace(asked)
        if not self.sees(asked):
            raise WorkspaceOutOfScope(asked)
        return frozenset((asked,))

    def writes(self, asked: str | None, *, doing: str = "ingesting") -> str:
        """The workspace an ingest goes to, or why this key may not write there."""
        self.require_write(doing)
        if asked is None:
            if self.workspaces is None or DEFAULT_WORKSPACE in self.workspaces:
                return DEFAULT_WORKSPACE
            if len(self.workspaces) == 1:
                return next(iter(self.workspaces))
            raise WorkspaceRequired(sorted(self.workspaces))
        check_workspace(asked)
        if not self.sees(asked):
            raise WorkspaceOutOfScope(asked)
        return asked

    def require_write(self, doing: str) -> None:
        if not self.can_write:
            raise ReadOnlyKey(doing)


# Anonymous mode (API_KEYS_REQUIRED=false), staff in the admin, commands: everything.
EVERYTHING = Scope()
