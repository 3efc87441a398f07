"""A throwaway PostgreSQL server for the test suite (the one place this logic lives).

Order of preference:

1. ``PODIUM_TEST_POSTGRES_URL`` -- a server you run (the URL of a database the
   tests may create databases from; its user needs CREATEDB).
2. Debian's PostgreSQL binaries (``/usr/lib/postgresql/*/bin``), installed with
   ``apt-get install -y postgresql`` when missing and running as root.
3. Neither: postgres tests are skipped, with the reason.

The server is a private cluster made by ``initdb`` in a temporary directory,
listening only on a Unix socket there (no TCP port), with ``fsync=off`` (it is
thrown away). As root, it runs as the ``postgres`` user (``runuser``), because
PostgreSQL refuses to run as root. Tests share one database that is emptied
(``TRUNCATE``, ~25 ms) before each test; a test that needs a database of its own
(several processes, say) gets a copy of a template holding podium's tables.

Run ``python tests/_postgres.py`` to start a server by hand; it prints the URL.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = "PODIUM_TEST_POSTGRES_URL"
TEMPLATE = "podium_template"


def _bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def install() -> str | None:
    """Install Debian's ``postgresql`` package if needed; return why not, or ``None``."""
    if _bindir() is not None:
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("apt-get"):
        return "PostgreSQL is not installed and cannot be (needs root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "postgresql"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}"
    return None if _bindir() is not None else "apt-get installed postgresql but no initdb found"


class Server:
    """A private PostgreSQL cluster on a Unix socket in a temporary directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="podium-pg-"))
        self.data = self.dir / "data"
        self._counter = itertools.count()
        self.external = os.environ.get(ENV)

    def _as_owner(self, cmd: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *cmd]
        return cmd

    def start(self) -> None:
        """Make the cluster and start it (seconds)."""
        if self.external:
            return
        bindir = _bindir()
        if bindir is None:  # pragma: no cover - install() ran first
            raise RuntimeError("no PostgreSQL binaries")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            self._as_owner(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self.data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--no-instructions",
                ]
            ),
            check=True,
            capture_output=True,
        )
        options = (
            f"-c listen_addresses='' -k {self.dir} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        subprocess.run(
            self._as_owner(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.dir / "server.log"),
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
        )

    def url(self, database: str = "postgres") -> str:
        """The URL of a database on this server."""
        if self.external:
            from psycopg.conninfo import conninfo_to_dict, make_conninfo

            params = conninfo_to_dict(self.external)
            params["dbname"] = database
            return make_conninfo("", **params)
        return f"postgresql:///{database}?host={self.dir}&user=postgres"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def prepare_template(self) -> None:
        """Create the template database holding podium's tables."""
        from podium.checkpoints import postgres_saver

        self._admin(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        self._admin(f"CREATE DATABASE {TEMPLATE}")
        postgres_saver(self.url(TEMPLATE), pool_size=2).close()

    def create_database(self, *, empty: bool = False) -> str:
        """A fresh database with podium's tables (or none: ``empty``); returns its URL."""
        name = f"podium_t{os.getpid()}_{next(self._counter)}"
        template = "template0" if empty else TEMPLATE
        self._admin(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
        return self.url(name)

    def reset(self, url: str) -> None:
        """Empty every podium and LangGraph table of a database (keeps the schema)."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                    "AND tablename NOT LIKE '%migrations'"
                )
            ]
            if tables:
                conn.execute(f"TRUNCATE {', '.join(tables)}")

    def drop_database(self, url: str) -> None:
        """Drop a database made by :meth:`create_database`."""
        from psycopg.conninfo import conninfo_to_dict

        name = conninfo_to_dict(url)["dbname"]
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        """Stop the cluster and delete its directory."""
        if not self.external and (self.data / "postmaster.pid").exists():
            bindir = _bindir()
            subprocess.run(
                [
                    *self._as_owner(
                        [str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate"]
                    ),
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.dir, ignore_errors=True)


def start_server() -> tuple[Server | None, str | None]:
    """Install if needed and start a server; ``(server, None)`` or ``(None, reason)``."""
    if not os.environ.get(ENV):
        reason = install()
        if reason:
            return None, reason
    server = Server()
    try:
        server.start()
    except Exception as exc:
        server.stop()
        detail = (
            exc.stderr.decode(errors="replace")
            if isinstance(exc, subprocess.CalledProcessError)
            else ""
        )
        return None, f"could not start PostgreSQL: {exc} {detail}".strip()
    try:
        server.prepare_template()  # podium's own code: a failure here is a test failure
    except BaseException:
        server.stop()
        raise
    return server, None


if __name__ == "__main__":
    started = time.perf_counter()
    srv, why = start_server()
    if srv is None:
        sys.exit(f"no PostgreSQL: {why}")
    print(f"started in {time.perf_counter() - started:.1f}s: {srv.url()}")
    print("press Enter to stop")
    try:
        input()
    finally:
        srv.stop()
