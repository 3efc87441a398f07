"""Telling a PostgreSQL URL from a file path, and printing it without its password.

Standard library only: the CLI decides with these whether to import psycopg at all.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

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
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unparseable connection string>"
    user, at, hosts = parts.netloc.rpartition("@")
    in_query = any(k == "password" for k, _ in query)
    if ":" not in user and not in_query:
        return url  # no password in it
    netloc = f"{user.split(':', 1)[0]}{at}{hosts}"
    if in_query:
        kept = urlencode([(k, v) for k, v in query if k != "password"], safe="/")
    else:
        kept = parts.query
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{kept}" if kept else "")
