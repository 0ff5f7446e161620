"""URLs that may carry credentials: refused where they would be stored, masked where shown.

Prefect stores a flow run's parameters in plain text and shows them in its UI and API, so a
password inside a URL parameter would be kept there for anyone to read. Passwords come from
elsewhere instead: libpq's PGPASSWORD or ~/.pgpass, a Prefect Secret block (set into the parsed
URL in memory only), or a store's own credential chain. Every URL shown (logs, artifacts, errors)
goes through `masked_url` first.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from labvault.errors import InvalidInputError

MASK = "***"
# Query keys refused: libpq's password and sslpassword. Masked too: the signature, credential and
# token of a presigned link, which may be given on purpose (a link that expires) but not shown.
_PASSWORD_WORDS = ("password",)
_MASKED_WORDS = ("password", "secret", "token", "signature", "credential")
DATABASE_EXAMPLE = "sqlite:////path/to/restored.db or postgresql+psycopg://user@host/database"
STORE_CREDENTIALS = ("give the store's credentials the usual way (for S3: AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY, ~/.aws or an instance role)")


def _key_has(query_piece: str, words: tuple[str, ...]) -> bool:
    key = unquote(query_piece.partition("=")[0]).lower()
    return any(word in key for word in words)


def credentials_in(url: str) -> bool:
    """Whether `url` carries a password: in its user part (`user:pw@host`) or a query key such as
    `?password=`. A path or a backup sid carries none."""
    if "://" not in url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # unparseable (a stray '['): treat it as the worst case
        return True
    return bool(parts.password) or any(_key_has(piece, _PASSWORD_WORDS) for piece in parts.query.split("&"))


def masked_url(url: str | URL) -> str:
    """`url` with the password of its user part and the values of password, secret, token,
    signature and credential query keys replaced by ***.

    Anything that is not a URL comes back unchanged; a URL that cannot be split keeps only its
    scheme, since where its password ends is unknown."""
    text = url.render_as_string(hide_password=True) if isinstance(url, URL) else url
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return f"{text.partition('://')[0]}://{MASK}"
    netloc, query = parts.netloc, parts.query
    if parts.password:
        user_info, _, host = netloc.rpartition("@")
        netloc = f"{user_info.partition(':')[0]}:{MASK}@{host}"
    if query:
        query = "&".join(f"{piece.partition('=')[0]}={MASK}" if _key_has(piece, _MASKED_WORDS) else piece
                         for piece in query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return text
    return (f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
            + (f"#{parts.fragment}" if parts.fragment else ""))


def refuse_credentials(url: str, *, name: str, instead: str) -> None:
    """Refuse a URL parameter (`name`, as its door spells it) that carries a password, saying
    how to give it `instead`. The message shows the URL masked."""
    if credentials_in(url):
        raise _carries_password(masked_url(url), name, instead)


def _carries_password(shown: str, name: str, instead: str) -> InvalidInputError:
    return InvalidInputError(f"{name} {shown!r} carries a password, which Prefect would store in plain "
                             f"text with the run's parameters; leave it out of the URL and {instead}")


def database_url(url: str, *, name: str, secret_option: str) -> URL:
    """The parsed target database URL given as `name`: a SQLAlchemy URL of an installed dialect
    and driver, with no password (that comes from PGPASSWORD, ~/.pgpass or the Secret block named
    by `secret_option`, and is set with `URL.set(password=...)` in memory only)."""
    try:
        parsed = make_url(url)
    except ArgumentError:  # not echoed: where a password would sit in it is unknown
        raise InvalidInputError(f"{name} is not a SQLAlchemy URL; use e.g. {DATABASE_EXAMPLE}") from None
    instead = f"name a Prefect Secret block holding it with {secret_option}"
    if parsed.get_backend_name() == "postgresql":
        instead = f"give it in PGPASSWORD or ~/.pgpass, or {instead}"
    shown = masked_url(parsed)
    if parsed.password or credentials_in(url):
        raise _carries_password(shown, name, instead)
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        raise InvalidInputError(f"{name} {shown!r}: unknown database dialect {parsed.drivername!r}; "
                                f"use e.g. {DATABASE_EXAMPLE}") from None
    except ImportError as exc:
        raise InvalidInputError(f"{name} {shown!r}: the driver for {parsed.drivername!r} is not "
                                f"installed ({exc}); use e.g. {DATABASE_EXAMPLE}") from None
    return parsed


def with_password(url: str, password: str) -> str:
    """`url` with `password` set in its user part, for an engine only: never log or store it."""
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def files_url(url: str, *, name: str) -> str:
    """A target files store given as `name`: a folder or fsspec URL, not blank, with no password."""
    if not url.strip():
        raise InvalidInputError(f"{name} is empty; give a folder or a URL such as s3://bucket/prefix")
    refuse_credentials(url, name=name, instead=STORE_CREDENTIALS)
    return url
