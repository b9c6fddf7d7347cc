"""Throwaway PostgreSQL and Redis servers on loopback, for the distributed tests and benchmarks.

The real servers from Debian's packages (`scripts/install-services`), never a mock: each starts on a free port
in a temporary folder and is stopped and removed when its `with` block ends, whatever happened inside.
PostgreSQL refuses to run as root, so under root its cluster belongs to the package's `postgres` user and
every server command runs as that user.

Run as a script (`python -m sonora_pipeline_tests.services`) it starts both and prints how to reach them,
until Ctrl-C: what the README's "Scaling out" commands use on a machine with no servers of its own.
"""

from __future__ import annotations

import configparser
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_SECONDS = 60.0


class ServiceUnavailable(RuntimeError):
    """A server binary is missing or did not start: says which, and the fix."""


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    folder: Path

    def url(self, database: str) -> str:
        """A SQLAlchemy URL as dagster-postgres wants it (psycopg2, which SQLAlchemy 2.1 no longer picks by default)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"

    def libpq(self, database: str) -> str:
        """A libpq connection string, as DuckLake's `ducklake:postgres:` catalog takes it."""
        return f"dbname={database} host={self.host} port={self.port} user={self.user}"

    @property
    def server_pid(self) -> int:
        """The postmaster's pid (it forks a backend per connection and reaps them: its children's CPU is theirs)."""
        return int((self.folder / "data" / "postmaster.pid").read_text().split()[0])

    def create_database(self, name: str) -> str:
        _run_as_owner([_pg_bin("psql"), "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", "postgres",
                       "-v", "ON_ERROR_STOP=1", "-qc", f'CREATE DATABASE "{name}"'], self.folder)
        return name


@dataclass(frozen=True)
class PgBouncer:
    """PgBouncer in transaction mode in front of a `Postgres`: Dagster's storages open a new connection for
    every query (SQLAlchemy's NullPool, hard-coded in dagster-postgres), which PostgreSQL answers by forking a
    backend each time; PgBouncer answers them from a few server connections it keeps open."""

    host: str
    port: int
    user: str
    pid: int  # of the process started (runuser's under root; pgbouncer is its child)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{database}"


@dataclass(frozen=True)
class Redis:
    host: str
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise ServiceUnavailable(f"PostgreSQL's {name} is not installed. Fix: scripts/install-services")
    return found[-1]


def _server_owner() -> str | None:
    """The user PostgreSQL runs as: None (this one) unless this is root, which PostgreSQL refuses."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable("running as root, and there is no `postgres` user to run PostgreSQL as. "
                                 "Fix: scripts/install-services (Debian's package creates it)") from None
    return "postgres"


def _run_as_owner(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    owner = _server_owner()
    command = ["runuser", "-u", owner, "--", *args] if owner else args
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, **kwargs)


def _wait_for_port(port: int, process: subprocess.Popen | None, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise ServiceUnavailable(f"{what} did not start on port {port} within {START_TIMEOUT_SECONDS:.0f} s. {detail}")


@contextlib.contextmanager
def postgres_server(user: str = "sonora") -> Iterator[Postgres]:
    """A new cluster (trust authentication on loopback only: it lives as long as the block), superuser `user`."""
    folder = Path(tempfile.mkdtemp(prefix="sonora-pg-"))
    owner = _server_owner()
    if owner:
        shutil.chown(folder, owner)
    data, log, port = folder / "data", folder / "server.log", free_port()
    process = None
    try:
        _run_as_owner([_pg_bin("initdb"), "-D", str(data), "-U", user, "--auth=trust", "-E", "UTF8",
                       "--no-sync"], folder)
        with open(log, "w") as out:
            if owner:
                shutil.chown(log, owner)
            args = [_pg_bin("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                    "-k", str(folder), "-c", "fsync=off", "-c", "full_page_writes=off",
                    "-c", "synchronous_commit=off", "-c", "max_connections=200"]
            command = ["runuser", "-u", owner, "--", *args] if owner else args
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_for_port(port, process, "PostgreSQL", log)
        server = Postgres("127.0.0.1", port, user, folder)
        for _ in range(50):  # accepting connections a moment before it accepts logins
            try:
                _run_as_owner([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], folder)
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        yield server
    finally:
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # "fast" shutdown: ends sessions, no checkpoint wait
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)


PGBOUNCER_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "distributed" / "pgbouncer.ini"


def _pgbouncer_config(pg: Postgres, port: int, folder: Path) -> str:
    """deploy/distributed/pgbouncer.ini (its pooling as the README gives it) with this machine's parts: every
    database of `pg`, a loopback port, trust authentication (as `pg` has), files in `folder`."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(PGBOUNCER_CONFIG)
    config["databases"] = {"*": f"host={pg.host} port={pg.port}"}
    config["pgbouncer"].update({"listen_addr": "127.0.0.1", "listen_port": str(port), "unix_socket_dir": "",
                                "auth_type": "trust", "auth_file": str(folder / "users.txt"),
                                "logfile": str(folder / "pgbouncer.log"), "pidfile": str(folder / "pgbouncer.pid")})
    lines = []
    for section in config.sections():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in config[section].items()]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def pgbouncer_server(pg: Postgres) -> Iterator[PgBouncer]:
    """PgBouncer (Debian's package) on a free loopback port, pooling connections to `pg` per database and user
    (transaction mode, trust on loopback as `pg` has). Like PostgreSQL it refuses root, so it runs as `postgres`."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        raise ServiceUnavailable("pgbouncer is not installed. Fix: scripts/install-services")
    folder = Path(tempfile.mkdtemp(prefix="sonora-pgbouncer-"))
    owner = _server_owner()
    port = free_port()
    config = folder / "pgbouncer.ini"
    config.write_text(_pgbouncer_config(pg, port, folder))
    (folder / "users.txt").write_text(f'"{pg.user}" ""\n')
    if owner:
        for path in (folder, config, folder / "users.txt"):
            shutil.chown(path, owner)
    command = [binary, "--quiet", str(config)]
    process = subprocess.Popen(["runuser", "-u", owner, "--", *command] if owner else command,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, process, "PgBouncer", folder / "pgbouncer.log")
        yield PgBouncer("127.0.0.1", port, pg.user, process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # immediate shutdown (SIGINT waits for clients to leave)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def redis_server() -> Iterator[Redis]:
    """A Redis server with nothing saved to disk, on a free loopback port."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise ServiceUnavailable("redis-server is not installed. Fix: scripts/install-services")
    folder = Path(tempfile.mkdtemp(prefix="sonora-redis-"))
    port, log = free_port(), folder / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", str(folder)],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, process, "Redis", log)
        yield Redis("127.0.0.1", port)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    with postgres_server() as pg, pgbouncer_server(pg) as bouncer, redis_server() as redis:
        print(f"PostgreSQL: {pg.url('postgres')}  (libpq: {pg.libpq('postgres')})")
        print(f"PgBouncer:  {bouncer.url('postgres')}  (Dagster's storage; transaction pooling)")
        print(f"Redis:      {redis.url()}")
        print("Ctrl-C stops them all and removes their folders.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
