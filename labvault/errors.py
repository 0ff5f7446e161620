"""Error hierarchy: what went wrong, said in one line a user can act on.

Third-party errors are wrapped at the storage and database boundary (`raise ... from exc`), so
callers decide on retries by class alone: only `TransientError` is worth retrying.
"""


class LabvaultError(Exception):
    """Base of every error labvault raises on purpose; its message is one line for the user."""


class TransientError(LabvaultError):
    """A temporary failure (network, lock, throttling): the same call may succeed later."""


class PermanentError(LabvaultError):
    """A failure that retrying cannot fix."""


class InvalidInputError(PermanentError):
    """The caller asked for something malformed (blank name, bad URL, …)."""


class NotFoundError(PermanentError):
    """An organization, backup or other named thing does not exist."""


class PermissionDeniedError(PermanentError):
    """The requester may not do this (not an admin of the organization)."""


class ConflictError(PermanentError):
    """The request collides with work already under way (a backup of the same organization)."""


class MissingBlobError(PermanentError):
    """An uploaded file's bytes are not in the files store."""


def one_line(exc: BaseException, limit: int = 500) -> str:
    """The reason stored on a failed backup: one line, bounded, naming the error type if not ours."""
    text = str(exc) if isinstance(exc, LabvaultError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
