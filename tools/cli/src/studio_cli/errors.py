"""Exit codes and the errors that end a command with one of them.

Every failure the CLI expects is a :class:`CliError`: it is printed as one or two
lines (the problem's `title` and `detail`), never as a traceback.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    # Anything unexpected (a bug); details with STUDIO_CLI_DEBUG=1.
    FAILURE = 1
    # Bad options or arguments (click's own code).
    USAGE = 2
    # Not signed in, or the token expired or was refused (401).
    AUTH = 3
    # Signed in, but the role does not allow it (403).
    FORBIDDEN = 4
    # The title, season, episode, job, user or file does not exist (404).
    NOT_FOUND = 5
    # The request was refused: invalid input, a conflict, a failed check (400, 409, 413, 422).
    REJECTED = 6
    # The stack cannot be reached, is busy or failed (connection errors, 429, 5xx).
    UNAVAILABLE = 7
    # The transcode of the uploaded episode failed.
    TRANSCODE_FAILED = 8
    # Ctrl-C. An interrupted upload resumes when the same command runs again.
    INTERRUPTED = 130


class CliError(Exception):
    def __init__(self, title: str, detail: str | None = None, code: Exit = Exit.FAILURE) -> None:
        super().__init__(title)
        self.title = title
        self.detail = detail
        self.code = code


def exit_for_status(status: int) -> Exit:
    if status == 401:
        return Exit.AUTH
    if status == 403:
        return Exit.FORBIDDEN
    if status == 404:
        return Exit.NOT_FOUND
    if status == 429 or status >= 500:
        return Exit.UNAVAILABLE
    if 400 <= status < 500:
        return Exit.REJECTED
    return Exit.FAILURE


class ApiError(CliError):
    """A problem+json answer (or any non-2xx answer) from the stack."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        problem_type: str | None = None,
        errors: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(title, detail, exit_for_status(status))
        self.status = status
        self.problem_type = problem_type
        self.errors = errors or []

    @property
    def slug(self) -> str | None:
        prefix = "urn:studio:problem:"
        if self.problem_type and self.problem_type.startswith(prefix):
            return self.problem_type[len(prefix) :]
        return None
