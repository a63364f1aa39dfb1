"""A throwaway PostgreSQL server for the tests: one cluster in a temporary folder, reached only through
a Unix socket in that folder, removed when the session ends.

`initdb` refuses to run as root, and CI runs as root: then the folder is handed to the `postgres`
user (made by Debian's `postgresql` package, `make sysdeps`) and `initdb` / `pg_ctl` run through
`runuser -u postgres --`. A normal user runs them directly. The server listens on no TCP address
(`listen_addresses=''`), so the port only names the socket file inside the cluster's own folder:
two servers with the same port in different folders do not meet, and neither meets the system
cluster Debian may have started on install.

URLs are in libpq's form, the one the product reads: `postgresql://postgres@/DB?host=SOCKDIR&port=PORT`.
SQLAlchemy reads a plain `postgresql://` as psycopg2, so give it `postgresql+psycopg://` (`sqlalchemy_url`).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "postgres"
BASE_PORT = 54000
# A Unix socket path must stay under ~100 bytes: the folder lives directly in /tmp.
SOCKET_PARENT = "/tmp"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries (or the user to run them as) are missing."""


def _has_server(bindir: Path) -> bool:
    return (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file()


def _version_key(bindir: Path) -> tuple[int, ...]:
    """`/usr/lib/postgresql/15/bin` -> (15,); unknown shapes sort first."""
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (0,)


def find_bindir() -> Path:
    """The folder holding `initdb` and `pg_ctl`: `pg_config --bindir`, else the newest
    /usr/lib/postgresql/*/bin, else wherever `initdb` is on PATH."""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")), key=_version_key, reverse=True)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if _has_server(bindir):
            return bindir
    raise PostgresUnavailable(
        "the PostgreSQL server binaries (initdb, pg_ctl) are missing: run `make sysdeps` "
        "(it installs the Debian package `postgresql`, listed in system-packages.txt)"
    )


def port_for_worker(worker_id: str) -> int:
    """54000 for a run without xdist (`master`), 54000 + N for worker `gwN`."""
    match = re.fullmatch(r"gw(\d+)", worker_id)
    return BASE_PORT + (int(match.group(1)) if match else 0)


class PostgresServer:
    """One throwaway cluster. `start()`, then `create_database()` as often as needed, then `stop()`
    (which also removes every file). Usable as a context manager."""

    def __init__(self, port: int = BASE_PORT, bindir: Path | None = None) -> None:
        self.port = port
        self.bindir = bindir or find_bindir()
        self.as_root = os.geteuid() == 0
        self.root: Path | None = None
        self._started = False
        self._count = 0

    # Paths inside the temporary folder; the folder itself is the socket directory.
    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root

    @property
    def data_dir(self) -> Path:
        return self.socket_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.socket_dir / "server.log"

    def url(self, dbname: str = "postgres") -> str:
        """libpq URL of a database on this server (the form the product reads)."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def sqlalchemy_url(self, dbname: str = "postgres") -> str:
        """The same URL for SQLAlchemy with psycopg 3."""
        return self.url(dbname).replace("postgresql://", "postgresql+psycopg://", 1)

    def _run(self, *args: str, timeout: float = 120) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
        # Our own folder as the working directory: the postgres user may not be able to read the caller's.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(cmd, cwd=self.socket_dir, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
                + (f"\nserver log:\n{log}" if log else "")
            )

    def start(self) -> PostgresServer:
        owner: tuple[int, int] | None = None
        if self.as_root:
            import pwd

            try:
                user = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root but there is no `{SUPERUSER}` user to run the server as: run `make sysdeps` "
                    "(the Debian package `postgresql` creates it)"
                ) from None
            if not shutil.which("runuser"):
                raise PostgresUnavailable("running as root but `runuser` (util-linux) is missing")
            owner = (user.pw_uid, user.pw_gid)
        self.root = Path(tempfile.mkdtemp(prefix="pg", dir=SOCKET_PARENT))
        try:
            if owner is not None:
                os.chown(self.root, *owner)
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
            self.resume()
        except BaseException:
            self.stop()
            raise
        return self

    def create_database(self, hint: str = "test") -> str:
        """A new, empty database; returns its libpq URL. `hint` (e.g. the test's name) becomes part of
        the database's name, to make a leftover one recognisable in the log."""
        import psycopg
        from psycopg import sql

        self._count += 1
        name = f"t{self._count}_" + re.sub(r"[^a-z0-9_]+", "_", hint.lower()).strip("_")
        name = name[:63]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            # FILE_COPY (PostgreSQL 15+) copies the template's files instead of writing them to the WAL:
            # much faster for a small template.
            strategy = sql.SQL(" STRATEGY = FILE_COPY") if conn.info.server_version >= 150000 else sql.SQL("")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)) + strategy)
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database made by `create_database`, closing whatever connections are left on it."""
        import psycopg
        from psycopg import sql

        name = url.split("?", 1)[0].rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            force = sql.SQL(" WITH (FORCE)") if conn.info.server_version >= 130000 else sql.SQL("")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)) + force)

    def halt(self) -> None:
        """Stop the server but keep its data: a database outage, ended by `resume()`."""
        self._run("pg_ctl", "-D", str(self.data_dir), "stop", "-m", "fast", "-w")
        self._started = False

    def resume(self) -> None:
        options = f"-k {self.socket_dir} -p {self.port} -c listen_addresses='' -c fsync=off"
        options += " -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data_dir), "-o", options, "-l", str(self.log_file), "start", "-w")
        self._started = True

    def stop(self) -> None:
        """Stop the server (fast: open connections are closed) and remove its folder."""
        if self.root is None:
            return
        try:
            if self._started:
                self._run("pg_ctl", "-D", str(self.data_dir), "stop", "-m", "fast", "-w")
        finally:
            self._started = False
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
