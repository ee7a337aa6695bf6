"""PostgreSQL 15 from the Debian package, as a private cluster under the state folder.

The cluster is shopstream's own (``<state>/postgres/data``), not the package's ``main``
cluster, so it never fights a system PostgreSQL. Settings that matter for CDC are passed on
the command line at every start, so changing a setting and restarting is enough:
``wal_level=logical``, replication slots and senders, and ``max_slot_wal_keep_size`` so a
connector that is down for long invalidates its slot instead of filling the disk.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from shopstream.errors import ShopstreamError
from stack import process
from stack.local_service import Service

_PG_MAJOR = "15"
#: PostgreSQL refuses to run as root; when we are root it runs as this OS user.
_RUN_AS = "postgres"


def find_pg_bin(configured: Path | None) -> Path:
    """The folder holding initdb and postgres for PostgreSQL 15."""
    candidates = [configured] if configured else [Path(f"/usr/lib/postgresql/{_PG_MAJOR}/bin")]
    for folder in candidates:
        if folder and (folder / "postgres").exists() and (folder / "initdb").exists():
            return folder
    raise ShopstreamError(
        f"PostgreSQL {_PG_MAJOR} server binaries not found "
        f"(looked in {', '.join(str(c) for c in candidates)}). "
        "Install them with `make postgres` (apt-get install postgresql-15) "
        "or set SHOPSTREAM_PG_BIN_DIR."
    )


class Postgres(Service):
    """The shop's database server: logical decoding on, for Debezium."""

    name = "postgres"
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown: rolls back, checkpoints

    @property
    def host(self) -> str:
        return self.settings.pg_host

    @property
    def port(self) -> int:
        return self.settings.pg_port

    @property
    def user(self) -> str:
        return self.settings.pg_user

    @property
    def password(self) -> str:
        return self.settings.pg_password.get_secret_value()

    @property
    def database(self) -> str:
        """The database ``up`` creates and the health check connects to."""
        return self.settings.pg_database

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def socket_dir(self) -> Path:
        return self.home / "socket"

    @property
    def marker(self) -> str:
        return str(self.data_dir)

    @property
    def endpoint(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def port_setting(self) -> str:
        return "SHOPSTREAM_PG_PORT"

    # Running as the postgres OS user when we are root ------------------------------------

    def _run_user(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(_RUN_AS)
        except KeyError as exc:
            raise ShopstreamError(
                f"running as root but there is no '{_RUN_AS}' OS user to run PostgreSQL as; "
                "install the Debian package (`make postgres`), which creates it"
            ) from exc
        return pw.pw_uid, pw.pw_gid

    def _chown_tree(self, path: Path) -> None:
        ids = self._run_user()
        if ids is None:
            return
        uid, gid = ids
        for root, dirs, files in os.walk(path):
            os.chown(root, uid, gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)

    def _run_as(self) -> tuple[int | None, int | None, list[int] | None]:
        """user, group and extra_groups for subprocess: the postgres user when we are root."""
        ids = self._run_user()
        return (ids[0], ids[1], []) if ids else (None, None, None)

    # Lifecycle ---------------------------------------------------------------------------

    def check_prerequisites(self) -> None:
        find_pg_bin(self.settings.pg_bin_dir)
        self._run_user()

    def prepare(self) -> None:
        bin_dir = find_pg_bin(self.settings.pg_bin_dir)
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir)
        self._chown_tree(self.home)
        # The postgres user must be able to reach the data directory through its parents.
        for parent in self.home.parents:
            if parent == parent.parent:
                break
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise ShopstreamError(
                    f"PostgreSQL runs as '{_RUN_AS}' and cannot enter {parent} "
                    f"(mode {oct(mode & 0o777)}); choose a SHOPSTREAM_STATE_DIR it can reach"
                )

    def _initdb(self, bin_dir: Path) -> None:
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)  # a half-made cluster from an interrupted init
        self._chown_tree(self.home)
        pwfile = self.home / ".initdb-pw"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._chown_tree(self.home)
        user, group, extra_groups = self._run_as()
        try:
            result = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                capture_output=True,
                text=True,
                check=False,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ShopstreamError(f"initdb failed:\n{result.stderr.strip()[-2000:]}")
        # Replication connections (Debezium) authenticate like any other TCP connection.
        with (self.data_dir / "pg_hba.conf").open("a") as hba:
            hba.write("\n# shopstream: logical replication for Debezium\n")
            hba.write("host replication all 127.0.0.1/32 scram-sha-256\n")
            hba.write("host replication all ::1/128 scram-sha-256\n")

    def role_options(self) -> dict[str, str]:
        """What this server's role needs: for the shop's, logical decoding."""
        s = self.settings
        return {
            "shared_buffers": s.pg_shared_buffers,
            "wal_level": "logical",
            "max_replication_slots": str(s.pg_max_replication_slots),
            "max_wal_senders": str(s.pg_max_wal_senders),
            "max_slot_wal_keep_size": s.pg_max_slot_wal_keep_size,
        }

    def server_options(self) -> list[str]:
        opts = {
            "port": str(self.port),
            "listen_addresses": self.host,
            "unix_socket_directories": str(self.socket_dir),
            **self.role_options(),
            "timezone": "UTC",
            "log_timezone": "UTC",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "log_line_prefix": "%m [%p] ",
            "max_connections": "100",
        }
        argv: list[str] = []
        for key, value in opts.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def launch(self) -> int:
        bin_dir = find_pg_bin(self.settings.pg_bin_dir)
        # A stale postmaster.pid from a crash blocks start-up only if that pid is alive;
        # PostgreSQL checks that itself, so it is left alone here.
        argv = [str(bin_dir / "postgres"), "-D", str(self.data_dir), *self.server_options()]
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        user, group, extra_groups = self._run_as()
        with self.logfile.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc.pid

    def _connect(self, dbname: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=dbname,
            user=self.user,
            password=self.password,
            connect_timeout=2,
            autocommit=True,
        )

    def healthy(self) -> bool:
        try:
            with self._connect(self.database) as conn:
                return conn.execute("select 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    def ensure_database(self) -> bool:
        """Create the database once the server answers; True if it was created."""
        with self._connect("postgres") as conn:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (self.database,)
            ).fetchone()
            if exists:
                return False
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(self.database)))
            return True

    def server_answers(self) -> bool:
        try:
            with self._connect("postgres") as conn:
                return conn.execute("select 1").fetchone() == (1,)
        except psycopg.OperationalError:
            return False

    def wait_healthy(self, timeout_s: float | None = None) -> float:
        took = process.wait_until(
            self.name,
            self.server_answers,
            self.running,
            self.logfile,
            timeout_s or self.settings.start_timeout_s,
        )
        self.ensure_database()
        return took


class OpsPostgres(Postgres):
    """shopstream's own ops database server (alert state, deliveries), apart from the shop's:
    when the shop's database is down, the page saying so still has somewhere to queue."""

    name = "ops-postgres"

    @property
    def host(self) -> str:
        return self.settings.ops_pg_host

    @property
    def port(self) -> int:
        return self.settings.ops_pg_port

    @property
    def user(self) -> str:
        return self.settings.ops_pg_user

    @property
    def password(self) -> str:
        return self.settings.ops_pg_password.get_secret_value()

    @property
    def database(self) -> str:
        return self.settings.ops_pg_database

    @property
    def port_setting(self) -> str:
        return "SHOPSTREAM_OPS_PG_PORT"

    def role_options(self) -> dict[str, str]:
        # Small and plain: no logical decoding, no replication slots.
        return {"shared_buffers": "64MB", "wal_level": "replica"}
