"""A throwaway PostgreSQL server for tests and benchmarks: Debian's binaries
(/usr/lib/postgresql/<version>/bin), a cluster in a temp dir, a free port.
As root it runs them as the `postgres` user (initdb refuses root)."""

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PostgresMissing(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresMissing(
            "PostgreSQL binaries not found (/usr/lib/postgresql/<version>/bin): install the "
            "Debian package `postgresql`, or set KAPOK_TEST_POSTGRES_URL to a server"
        )
    return Path(found[-1]).parent


class PostgresServer:
    """`durable=False` turns fsync off: fine for tests, wrong for benchmarks."""

    def __init__(self, *, durable: bool = False):
        self.bin = bin_dir()
        self.durable = durable
        self.dir = Path(tempfile.mkdtemp(prefix="kapok-pg-"))
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def _run(self, *args):
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")

    def start(self) -> str:
        """Start it; returns the URL of its maintenance database."""
        data = self.dir / "data"
        self._run(
            "initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
        )
        opts = f"-k {self.dir} -c listen_addresses=127.0.0.1 -p {self.port} -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self):
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
