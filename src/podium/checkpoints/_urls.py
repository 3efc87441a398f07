"""Telling a PostgreSQL URL from a file path, and printing it without its password.

Standard library only: the CLI decides with these whether to import psycopg at all.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["is_postgres_url", "safe_url"]


def is_postgres_url(location: str | None) -> bool:
    """Whether ``location`` is a PostgreSQL URL (not a file path)."""
    return bool(location) and str(location).startswith(("postgres://", "postgresql://"))


def safe_url(url: str) -> str:
    """``url`` without its password (in the user part or ``?password=``), to print.

    What is left still connects where libpq finds the password itself
    (``PGPASSWORD``, ``~/.pgpass``).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable connection string>"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, hosts = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{hosts}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "password"]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="/"), ""))
