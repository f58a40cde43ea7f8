"""A throwaway single-node SLURM 22.05 cluster (Debian's packages), run as root without systemd.

Five daemons, each started in the foreground as a child of this process and stopped by its
pid: ``munged`` (a key of its own), ``mariadbd`` (a data directory of its own) and
``slurmdbd`` so that ``sacct`` works, ``slurmctld`` and ``slurmd``. Everything listens on
127.0.0.1 only, on free ports, and lives in one directory under /tmp made with mode 0755
(munge's socket needs a 0755 directory that every user can reach: not under pytest's 0700
temporary directories).

The settings that it took on these machines (no cgroups, no systemd, a 2-core VM):
``proctrack/linuxproc`` and ``task/none``; ``select/cons_tres`` with ``CR_Core``;
``CommunicationParameters=NoCtldInAddrAny,NoInAddrAny`` (else the daemons bind 0.0.0.0);
``SchedulerParameters=batch_sched_delay=0`` (else array tasks start in waves 3 s apart);
``AccountingStoragePass=<munge socket>`` (``AuthInfo`` does not reach slurmdbd). The node is
``hostname -s``, which must resolve to a 127.x address. Clients find the cluster through
``SLURM_CONF``, which ``start`` exports.

From the shell, to bring a cluster up and down once and print the timings::

    python -m tests.services.slurm
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTITION = "debug"
CLUSTER = "mcgrad"
# Every daemon and every job process of one cluster carries this in its environment, so that
# whatever is left of that cluster after a stop can be found (slurmstepd detaches from slurmd).
MARKER = "MCGRAD_SLURM_ROOT"
BINARIES = ("munged", "mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "slurmctld", "slurmd",
            "sbatch", "sacct", "scontrol", "sinfo", "squeue", "scancel")


def search_path() -> str:
    """PATH with the daemons' directories (a non-login shell's PATH may lack /usr/sbin)."""
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(dirs + [d for d in ("/usr/sbin", "/sbin") if d not in dirs])


class Unavailable(RuntimeError):
    """The cluster cannot run on this machine; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (connections left in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def missing() -> str | None:
    """Why no cluster can run here (not root, a binary missing, the host name), or None."""
    if os.geteuid() != 0:
        return "a SLURM cluster needs root (its daemons run as root here)"
    absent = [name for name in BINARIES if shutil.which(name, path=search_path()) is None]
    if absent:
        return (f"SLURM/munge/MariaDB binaries missing: {', '.join(absent)} "
                "(scripts/install-test-services installs them as root)")
    host = socket.gethostname().split(".")[0]
    try:
        address = socket.gethostbyname(host)
    except OSError:
        return f"the host name {host!r} does not resolve (the node's name must resolve to 127.x)"
    if not address.startswith("127."):
        return f"the host name {host!r} resolves to {address}, not to a 127.x address"
    return None


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait(what: str, check, timeout: float, log: Path | None = None, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise Unavailable(f"{what} exited ({proc.returncode}) at start-up: {_tail(log) if log else ''}")
        if check():
            return
        time.sleep(0.1)
    raise Unavailable(f"{what} not ready within {timeout:.0f} s: {_tail(log) if log else ''}")


class SlurmCluster:
    """munged, MariaDB, slurmdbd, slurmctld and one slurmd on this host; ``.env`` is the clients' environment.

    Use as a context manager, or ``start()`` then ``stop()``; ``timings`` holds each phase's
    seconds.
    """

    def __init__(self, cpus: int | None = None):
        self.host = socket.gethostname().split(".")[0]
        self.cpus = cpus or os.cpu_count() or 1
        self.root: Path | None = None
        self.procs: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self.partition = PARTITION
        self._saved_conf: str | None = None

    # Paths, all under ``root``.
    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """The environment for SLURM's clients (sbatch, squeue, sacct, submitit)."""
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": search_path()}

    def _daemon_env(self) -> dict[str, str]:
        return {**self.env, MARKER: str(self.root)}

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 2)

    def _spawn(self, name: str, args: list[str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self._daemon_env(), start_new_session=True)
        self.procs[name] = proc
        return proc

    def client(self, *args: str, timeout: float = 30, check: bool = True) -> str:
        """Run a SLURM client command against this cluster; its stdout."""
        proc = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def start(self) -> SlurmCluster:
        reason = missing()
        if reason:
            raise Unavailable(reason)
        began = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="mcgrad-bench-slurm-"))
        self.root.chmod(0o755)
        for sub in ("etc", "munge", "log", "run", "state", "spool", "mysql"):
            (self.root / sub).mkdir(mode=0o755)
        for name in ("slurmctld", "slurmd", "slurmdbd", "mysql"):
            self.ports[name] = free_port()
        self._start_munge()
        self._start_mariadb()
        self._write_conf()
        self._start_slurmdbd()
        self._start_slurmctld()
        self._start_slurmd()
        self._saved_conf = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(self.conf)
        self._timed("start", began)
        return self

    def _start_munge(self) -> None:
        t = time.monotonic()
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        log = self.root / "log" / "munged.log"
        proc = self._spawn("munged", ["munged", "--foreground", f"--socket={self.munge_socket}",
                                      f"--key-file={key}", f"--log-file={log}",
                                      f"--pid-file={self.root / 'run' / 'munged.pid'}",
                                      f"--seed-file={self.root / 'munge' / 'munged.seed'}"], log)
        _wait("munged", self.munge_socket.exists, 20, log, proc)
        self._timed("munged", t)

    def _start_mariadb(self) -> None:
        t = time.monotonic()
        data = self.root / "mysql" / "data"
        sock = self.root / "mysql" / "mysqld.sock"
        log = self.root / "log" / "mariadb.log"
        with open(log, "ab") as out:
            init = subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                                   "--auth-root-authentication-method=socket", "--skip-test-db"],
                                  stdout=out, stderr=subprocess.STDOUT, env=self.env, timeout=120)
        if init.returncode != 0:
            raise Unavailable(f"mariadb-install-db failed ({init.returncode}): {_tail(log)}")
        self._timed("mariadb-install-db", t)
        t = time.monotonic()
        proc = self._spawn("mariadbd", [
            "mariadbd", "--no-defaults", f"--datadir={data}", f"--socket={sock}", "--user=root",
            "--bind-address=127.0.0.1", f"--port={self.ports['mysql']}", "--skip-name-resolve",
            f"--pid-file={self.root / 'run' / 'mariadbd.pid'}", f"--log-error={log}",
            # A throwaway accounting store: small and without durability.
            "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin",
        ], log)
        _wait("mariadbd", sock.exists, 60, log, proc)
        sql = ("CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm'; "
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")
        done = subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "-e", sql],
                              capture_output=True, text=True, env=self.env, timeout=30)
        if done.returncode != 0:
            raise Unavailable(f"creating the accounting user failed: {done.stderr.strip()[-300:]}")
        self._timed("mariadbd", t)

    def _write_conf(self) -> None:
        r = self.root
        auth = f"socket={self.munge_socket}"
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.conf.write_text(f"""\
ClusterName={CLUSTER}
SlurmctldHost={self.host}
SlurmctldPort={self.ports['slurmctld']}
SlurmdPort={self.ports['slurmd']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo={auth}
CredType=cred/munge
StateSaveLocation={r / 'state'}
SlurmdSpoolDir={r / 'spool'}
SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}
SlurmdPidFile={r / 'run' / 'slurmd.pid'}
SlurmctldLogFile={r / 'log' / 'slurmctld.log'}
SlurmdLogFile={r / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
KillWait=0
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost={self.host}
AccountingStoragePort={self.ports['slurmdbd']}
AccountingStoragePass={self.munge_socket}
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={self.partition} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")
        dbd = r / "etc" / "slurmdbd.conf"
        dbd.write_text(f"""\
AuthType=auth/munge
AuthInfo={auth}
DbdHost={self.host}
DbdPort={self.ports['slurmdbd']}
SlurmUser=root
PidFile={r / 'run' / 'slurmdbd.pid'}
LogFile={r / 'log' / 'slurmdbd.log'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.ports['mysql']}
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
CommunicationParameters=NoInAddrAny
""")
        dbd.chmod(0o600)  # slurmdbd wants its config private: it holds the database password

    def _listening(self, port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def _start_slurmdbd(self) -> None:
        t = time.monotonic()
        log = self.root / "log" / "slurmdbd.log"
        proc = self._spawn("slurmdbd", ["slurmdbd", "-D"], log)
        _wait("slurmdbd", lambda: self._listening(self.ports["slurmdbd"]), 60, log, proc)
        self._timed("slurmdbd", t)

    def _start_slurmctld(self) -> None:
        t = time.monotonic()
        log = self.root / "log" / "slurmctld.log"
        proc = self._spawn("slurmctld", ["slurmctld", "-D", "-i"], log)
        ping = lambda: subprocess.run(["scontrol", "ping"], env=self.env, capture_output=True,  # noqa: E731
                                      text=True, timeout=10).stdout.find("UP") >= 0
        _wait("slurmctld", ping, 60, log, proc)
        self._timed("slurmctld", t)

    def _start_slurmd(self) -> None:
        t = time.monotonic()
        log = self.root / "log" / "slurmd.log"
        proc = self._spawn("slurmd", ["slurmd", "-D", "-N", self.host], log)

        def idle() -> bool:
            state = self.client("sinfo", "-h", "-n", self.host, "-o", "%T", check=False).strip()
            return state.startswith("idle")

        _wait("slurmd", idle, 60, log, proc)
        self._timed("slurmd", t)

    def left(self) -> list[int]:
        """Pids of live processes of this cluster: its daemons and anything started in its jobs."""
        if self.root is None:
            return []
        daemon = f"{MARKER}={self.root}\0".encode()
        # A job's processes carry the environment it was submitted with, and SLURM_JOB_ID;
        # SLURM_CONF alone would also match any process started while the cluster ran.
        job = (f"SLURM_CONF={self.conf}\0".encode(), b"\0SLURM_JOB_ID=")
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            pid = int(environ.parent.name)
            if pid == os.getpid():
                continue
            try:
                data = environ.read_bytes()
                state = (environ.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z" and (daemon in data or all(n in b"\0" + data for n in job)):
                found.append(pid)
        return sorted(found)

    def stop(self, timeout: float = 30) -> None:
        """Cancel every job, stop the daemons (newest first), wait; raise if anything is left."""
        if self.root is None:
            return
        began = time.monotonic()
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            # slurmstepd detaches from slurmd: cancel jobs while slurmd is there to kill them.
            jobs = self.client("squeue", "-h", "-o", "%A", check=False, timeout=10).split()
            if jobs:
                self.client("scancel", *jobs, check=False, timeout=10)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline and self.client("squeue", "-h", "-o", "%A", check=False).split():
                    time.sleep(0.2)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while self.left() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self.left()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._saved_conf is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = self._saved_conf
        busy = [port for port in self.ports.values() if not port_is_free(port)]
        self._timed("stop", began)
        logs = self.root / "log"
        if not (left or busy):  # else keep the logs to look at
            shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        if left or busy:
            raise RuntimeError(f"SLURM cluster not cleanly stopped: processes {left} left, ports {busy} busy "
                               f"(logs kept in {logs})")


def main() -> int:
    try:
        with SlurmCluster() as cluster:
            print(f"cluster up: partition {cluster.partition!r}, node {cluster.host}, {cluster.cpus} CPUs, "
                  f"SLURM_CONF={cluster.conf}")
            print(cluster.client("sinfo").rstrip())
    except Unavailable as exc:
        print(f"slurm: {exc}", file=sys.stderr)
        return 1
    print("timings (s): " + ", ".join(f"{k} {v}" for k, v in cluster.timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
