"""A throwaway PostgreSQL server (Debian's binaries) and an ``mlflow server`` on it, on 127.0.0.1.

PostgreSQL runs on a data directory of its own, as the ``postgres`` user when we are root
(it refuses to run as root), on a free port of 127.0.0.1 with ``trust`` authentication, and
holds one database, ``mlflow``. Without systemd it is started and stopped with ``pg_ctl``.

From the shell (``make postgres`` / ``make postgres-stop``)::

    python -m tests.services.postgres start DIR   # prints the URI for `make server STORE=...`
    python -m tests.services.postgres stop DIR
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DATABASE = "mlflow"
SUPERUSER = "postgres"


class Unavailable(RuntimeError):
    """The service cannot run on this machine; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bin_dir() -> Path:
    """Debian's binaries of the newest installed PostgreSQL (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise Unavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl; "
                          "scripts/install-test-services installs it as root)")
    return found[-1].parent


class Postgres:
    """A PostgreSQL server on ``root/data``, its socket and log in ``root``.

    ``root`` must be reachable by the ``postgres`` user (no 0700 directory of another user
    on its path): it is handed over to that user.
    """

    def __init__(self, root: Path, durable: bool = True):
        self.root = Path(root).resolve()
        self.durable = durable
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.bin = bin_dir()
        self.user = SUPERUSER if os.geteuid() == 0 else None
        self.port: int | None = None

    @property
    def uri(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 60) -> str:
        proc = subprocess.run([str(self.bin / args[0]), *args[1:]], user=self.user, cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise Unavailable(f"{args[0]} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}")
        return proc.stdout

    def start(self) -> Postgres:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            try:
                pw = pwd.getpwnam(self.user)
            except KeyError:
                raise Unavailable(f"no {self.user!r} user (is Debian's postgresql package installed?)") from None
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            probe = subprocess.run(["test", "-w", str(self.root)], user=self.user)
            if probe.returncode != 0:
                raise Unavailable(f"the {self.user!r} user cannot write {self.root} (a 0700 directory on its path?)")
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), f"--username={SUPERUSER}", "--auth=trust",
                      "--encoding=UTF8", "--no-instructions")
        self.port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root}"
        if not self.durable:  # throwaway data (tests): not worth a sync per commit
            options += " -c fsync=off -c synchronous_commit=off"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options)
        exists = self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
                           "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if not exists.strip():
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, DATABASE)
        return self

    def dump(self) -> str:
        """The ``mlflow`` database as SQL text (``pg_dump``): everything the store holds."""
        return self._run("pg_dump", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, DATABASE, timeout=120)

    def pid(self) -> int | None:
        """The postmaster's pid, which is also its process group (pg_ctl starts it in a new session)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running_port(self) -> int | None:
        """The port of the running server, from its ``postmaster.pid`` (4th line)."""
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.pid() is None:
            return
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))


class TrackingServer:
    """``mlflow server`` on a backend store URI, on a free port of 127.0.0.1, in its own process group.

    MLflow's job executor is turned off and two workers serve requests (five processes,
    about 0.8 GB, instead of thirteen and 2.6 GB); its children outlive the parent, so it
    is stopped through its process group.
    """

    def __init__(self, store_uri: str, root: Path, workers: int = 2):
        self.store_uri = store_uri
        self.root = Path(root)
        self.workers = workers
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log = self.root / "mlflow-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> TrackingServer:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("MLFLOW_TRACKING_URI", None)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers), "--backend-store-uri", self.store_uri,
                 "--artifacts-destination", str(self.root / "artifacts")],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"mlflow server exited ({self.proc.returncode}) at start-up: {' | '.join(tail)}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server did not answer within {timeout:.0f} s (log: {self.log})")

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        from tests.services import processes_in_group

        deadline = time.monotonic() + timeout
        while processes_in_group(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if processes_in_group(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m tests.services.postgres start|stop DIR", file=sys.stderr)
        return 2
    pg = Postgres(Path(argv[1]))
    try:
        if argv[0] == "stop":
            pg.stop()
            print(f"PostgreSQL on {pg.data} stopped")
            return 0
        if pg.pid() is not None and pg.running_port() is not None:
            pg.port = pg.running_port()
            print(f"PostgreSQL already running on {pg.data}")
        else:
            pg.start()
    except Unavailable as exc:
        print(f"postgres: {exc}", file=sys.stderr)
        return 1
    print(f"PostgreSQL on 127.0.0.1:{pg.port}, data in {pg.data}; stop it with `make postgres-stop PG_DIR={pg.root}`.")
    print(f"Store URI: {pg.uri}")
    print(f"Serve it:  make server STORE={pg.uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
