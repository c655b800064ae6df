"""A real single-node SLURM cluster for tests: Debian's MariaDB, MUNGE, slurmdbd, slurmctld and
slurmd (.ci/slurm/install.sh installs them) started on this machine by `start_cluster` and stopped
when its `with` block ends. Needs root: the daemons run as root, munged as the munge user.

Everything lives under the work folder except MUNGE's (socket, key): munged refuses a socket below
a folder others cannot search (a pytest tmp_path is one), so it gets /run/slurm-test-munge-*,
removed at the end. Client commands (sbatch, sacct, submitit) need `Cluster.environ` (SLURM_CONF);
batch jobs inherit the submitter's environment, so code inside a job reaches the cluster too.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # the daemons live in sbin
PACKAGES = {  # executable: the Debian package that has it
    "mariadb-install-db": "mariadb-server",
    "mariadbd": "mariadb-server",
    "munged": "munge",
    "slurmdbd": "slurmdbd",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "sbatch": "slurm-client",
}
CLUSTER_NAME = "testcluster"
PARTITION = "debug"
MUNGE_PARENT = Path("/run")
DB_USER = DB_PASSWORD = "slurm"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.2
MARKER = "SLURM_TEST_CLUSTER"  # the work folder, in the environment of every daemon and job step


class ClusterError(RuntimeError):
    """The cluster cannot start; the message is one line (with the tail of a daemon's log)."""


def unavailable() -> str | None:
    """Why a cluster cannot start on this machine, or None when it can."""
    missing = sorted({package for exe, package in PACKAGES.items() if shutil.which(exe, path=PATH) is None})
    if missing:
        return f"Debian packages missing: {' '.join(missing)} (bash .ci/slurm/install.sh installs them)"
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (slurmd starts jobs as their owner, munged runs as munge)"
    return None


@dataclass(frozen=True)
class Cluster:
    workdir: Path
    conf: Path
    partition: str
    environ: dict[str, str]  # what a client needs in its environment

    def run(self, *command: str, timeout: float = 30) -> str:
        """A client command's stdout (sacct, scontrol, ...); raises with its stderr when it fails."""
        done = subprocess.run(command, env={**os.environ, **self.environ}, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(command)} failed ({done.returncode}): {one_line(done.stderr)}")
        return done.stdout


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen
    log: Path  # its own log file, else its output
    out: Path  # its stdout and stderr

    def check_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ClusterError(f"{self.name} exited with status {code} while starting; {self.tail()}")

    def tail(self) -> str:
        """The end of its log (of its output when it died before opening the log), on one line."""
        for path in (self.log, self.out):
            text = path.read_text(errors="replace") if path.is_file() else ""
            if text.strip():
                return f"{path}: {one_line(text)}"
        return f"{self.log}: (empty)"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Daemons:
    """Starts daemons in the foreground, each stopped when `stack` closes (the last one first)."""

    workdir: Path
    environ: dict[str, str]
    stack: ExitStack

    def start(self, executable: str, *args: str, log: Path | None = None, user: str | None = None) -> Daemon:
        """Run `executable` with its output to log/<executable>.out; `log`: its own log file."""
        out = self.workdir / "log" / f"{executable}.out"
        env = {**os.environ, **self.environ, "PATH": PATH, MARKER: str(self.workdir)}
        with out.open("ab") as sink:
            process = subprocess.Popen([shutil.which(executable, path=PATH), *args], stdin=subprocess.DEVNULL,
                                       stdout=sink, stderr=subprocess.STDOUT, env=env, user=user,
                                       cwd=self.workdir, start_new_session=True)  # a Ctrl-C reaches us, not it
        started = Daemon(executable, process, log or out, out)
        self.stack.callback(started.stop)
        return started


@contextmanager
def start_cluster(workdir: Path) -> Iterator[Cluster]:
    """Start MariaDB, munged, slurmdbd, slurmctld and slurmd with their config, state and logs
    under `workdir` (a previous run's daemons and state there are cleared first); yield once
    the node is idle; stop every daemon started here at the end."""
    reason = unavailable()
    if reason:
        raise ClusterError(reason)
    workdir = workdir.resolve()
    kill_stale_processes(workdir)
    for sub in ("etc", "db", "state", "spool", "run", "log"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
        (workdir / sub).mkdir(parents=True)
    munge_dir = MUNGE_PARENT / f"slurm-test-munge-{hashlib.sha256(bytes(workdir)).hexdigest()[:12]}"
    ports = dict(zip(("db", "dbd", "ctld", "slurmd"), free_ports(4)))
    conf, log = workdir / "etc" / "slurm.conf", workdir / "log"
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, munge_dir, ignore_errors=True)
        daemons = Daemons(workdir, {"SLURM_CONF": str(conf)}, stack)
        start_mariadb(daemons, ports["db"])
        munge_socket = start_munged(daemons, munge_dir)
        conf.write_text(slurm_conf(workdir, munge_socket, ports))
        # slurmdbd.conf sits beside slurm.conf (slurmdbd finds it through SLURM_CONF)
        write_private(workdir / "etc" / "slurmdbd.conf", slurmdbd_conf(workdir, munge_socket, ports))
        wait_for(daemons.start("slurmdbd", "-D", log=log / "slurmdbd.log"), lambda: port_open(ports["dbd"]),
                 "listening")
        cluster = Cluster(workdir, conf, PARTITION, daemons.environ)
        wait_for(daemons.start("slurmctld", "-D", "-f", str(conf), log=log / "slurmctld.log"),
                 lambda: node_state(cluster) != "", "answering sinfo")
        slurmd = daemons.start("slurmd", "-D", "-f", str(conf), "-N", node_name(), log=log / "slurmd.log")
        stack.callback(cancel_jobs, cluster)  # before the daemons stop: no job step outlives them
        wait_for(slurmd, lambda: node_state(cluster) == "idle", "idle in sinfo")
        yield cluster


def start_mariadb(daemons: Daemons, port: int) -> None:
    """A fresh MariaDB data folder, the server (as root, on 127.0.0.1 only) and slurmdbd's user."""
    workdir = daemons.workdir
    datadir, sock = workdir / "db", workdir / "run" / "mysqld.sock"
    options = ["--no-defaults", "--innodb-log-file-size=8M"]  # not /etc/mysql's settings; a small redo log
    install = subprocess.run(["mariadb-install-db", *options, f"--datadir={datadir}", "--user=root",
                              "--auth-root-authentication-method=normal", "--skip-test-db"],
                             capture_output=True, text=True, env={**os.environ, "PATH": PATH}, timeout=120)
    if install.returncode != 0:
        raise ClusterError(f"mariadb-install-db failed ({install.returncode}): {one_line(install.stderr)}")
    server = daemons.start("mariadbd", *options, "--user=root", f"--datadir={datadir}", f"--socket={sock}",
                           f"--pid-file={workdir / 'run' / 'mysqld.pid'}", f"--port={port}",
                           "--bind-address=127.0.0.1", "--innodb-buffer-pool-size=32M",
                           f"--log-error={workdir / 'log' / 'mariadbd.log'}", log=workdir / "log" / "mariadbd.log")
    wait_for(server, lambda: port_open(port), "listening")
    grant = (f"CREATE USER '{DB_USER}'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}';"
             f" GRANT ALL ON slurm_acct_db.* TO '{DB_USER}'@'127.0.0.1';")
    done = subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "--user=root", "--execute", grant],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise ClusterError(f"creating MariaDB user {DB_USER} failed: {one_line(done.stderr)}")


def start_munged(daemons: Daemons, munge_dir: Path) -> Path:
    """munged as the munge user with a fresh key; returns its socket."""
    shutil.rmtree(munge_dir, ignore_errors=True)
    munge_dir.mkdir(mode=0o755)
    key = munge_dir / "munge.key"
    write_private(key, secrets.token_bytes(1024))
    for path in (munge_dir, key):
        shutil.chown(path, "munge", "munge")
    sock = munge_dir / "munge.socket"
    munged = daemons.start("munged", "--foreground", f"--socket={sock}", f"--key-file={key}",
                           f"--pid-file={munge_dir / 'munged.pid'}", f"--seed-file={munge_dir / 'munged.seed'}",
                           user="munge")
    wait_for(munged, sock.exists, "listening")
    return sock


def slurm_conf(workdir: Path, munge_socket: Path, ports: dict[str, int]) -> str:
    return f"""\
ClusterName={CLUSTER_NAME}
SlurmctldHost={node_name()}(127.0.0.1)
SlurmctldPort={ports['ctld']}
SlurmdPort={ports['slurmd']}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket={munge_socket},cred_expire=10
StateSaveLocation={workdir / 'state'}
SlurmdSpoolDir={workdir / 'spool'}
SlurmctldPidFile={workdir / 'run' / 'slurmctld.pid'}
SlurmdPidFile={workdir / 'run' / 'slurmd.pid'}
SlurmctldLogFile={workdir / 'log' / 'slurmctld.log'}
SlurmdLogFile={workdir / 'log' / 'slurmd.log'}
# no cgroups in a container: track processes through /proc, bind no tasks
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# the main scheduler every second (default 60 s): a requeued job starts as soon as it may
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
JobRequeue=1
# a cancelled or requeued job's processes get SIGKILL 5 s after SIGTERM (default 30 s)
KillWait=5
# the node is usable again as soon as its slurmd registers, even after being marked DOWN
ReturnToService=2
# accounting: submitit reads job states with sacct
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={ports['dbd']}
# slurmctld reaches slurmdbd through this MUNGE socket, not AuthInfo's
AccountingStoragePass={munge_socket}
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
{node_config()} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def slurmdbd_conf(workdir: Path, munge_socket: Path, ports: dict[str, int]) -> str:
    return f"""\
AuthType=auth/munge
AuthInfo=socket={munge_socket}
DbdHost=localhost
DbdPort={ports['dbd']}
SlurmUser=root
LogFile={workdir / 'log' / 'slurmdbd.log'}
PidFile={workdir / 'run' / 'slurmdbd.pid'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports['db']}
StorageUser={DB_USER}
StoragePass={DB_PASSWORD}
StorageLoc=slurm_acct_db
"""


def node_name() -> str:
    return socket.gethostname().split(".")[0]


def node_config() -> str:
    """The node's line as slurmd detects it (CPUs, sockets, RealMemory): nothing to drain it for."""
    detected = subprocess.run([shutil.which("slurmd", path=PATH), "-C"], capture_output=True, text=True,
                              timeout=30, check=True)
    return detected.stdout.splitlines()[0]


def node_state(cluster: Cluster) -> str:
    try:
        return cluster.run("sinfo", "--noheader", "--Node", "--format=%T").strip()
    except ClusterError:  # slurmctld not answering yet
        return ""


def cancel_jobs(cluster: Cluster) -> None:
    """Cancel what a test left queued or running, and wait until it has ended."""
    jobs = cluster.run("squeue", "--noheader", "--format=%A").split()
    if jobs:
        cluster.run("scancel", *jobs)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while cluster.run("squeue", "--noheader", "--format=%A").split() and time.monotonic() < deadline:
            time.sleep(POLL_S)


def wait_for(daemon: Daemon, ready: Callable[[], bool], what: str) -> None:
    """Poll until `ready`; a one-line error with its log's tail when the daemon exits or is slow."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        daemon.check_running()
        if time.monotonic() > deadline:
            raise ClusterError(f"{daemon.name} not {what} after {START_TIMEOUT_S:.0f} s; {daemon.tail()}")
        time.sleep(POLL_S)


def one_line(text: str, lines: int = 5) -> str:
    """The last lines of `text`, joined by " | "."""
    return " | ".join(text.strip().splitlines()[-lines:])


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now: a system SLURM or MariaDB on the default ports is no clash."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def write_private(path: Path, content: str | bytes) -> None:
    """A file only its owner can read (munged and slurmdbd refuse any other)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as out:
        out.write(content.encode() if isinstance(content, str) else content)


def kill_stale_processes(workdir: Path) -> None:
    """Kill what a previous run in `workdir` left running (its test process killed, say): its
    daemons and job steps, marked in their environment, and the job processes below them."""
    parents = process_parents()
    doomed = {pid for pid in parents if started_for(pid, workdir)}
    while below := {pid for pid, parent in parents.items() if parent in doomed} - doomed:
        doomed |= below
    for pid in doomed:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # slurmstepd ignores SIGTERM; their state is wiped anyway
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while doomed & process_parents().keys() and time.monotonic() < deadline:
        time.sleep(POLL_S)


def process_parents() -> dict[int, int]:
    """Every live process (zombies aside) and its parent, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]  # after "pid (command)"
            if state != "Z":
                parents[int(stat.parent.name)] = int(parent)
    return parents


def started_for(pid: int, workdir: Path) -> bool:
    """Whether process `pid` was started for a cluster in `workdir`."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return f"{MARKER}={workdir}".encode() in environ
