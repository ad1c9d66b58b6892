"""A tracking stack on this machine: PostgreSQL in a folder under outputs/ and an MLflow server on it.

    python -m seqlab.tracking.stack start     # prints the tracking.uri to use (make server)
    python -m seqlab.tracking.stack stop      # stops both, by pid (make server-stop)
    python -m seqlab.tracking.stack status
    python -m seqlab.tracking.stack uri [--database]

Both listen on 127.0.0.1 only. The database password is generated once and kept in `<root>/password`
(mode 0600); it is printed only by `uri --database`, the line a user asks for to log straight to the
database. PostgreSQL refuses to run as root, so under root its programs run as the user `postgres`.
Starting twice, or stopping twice, is harmless; each wait is bounded.
"""

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqlab.errors import TrackingError
from seqlab.tracking.params import redact
from seqlab.tracking.store import as_typed, ensure_schema
from seqlab.tracking.sweep import paragraph, say

DEFAULT_ROOT = Path("outputs") / "tracking-stack"
POSTGRES_BINDIRS = "/usr/lib/postgresql/*/bin"  # where Debian's postgresql package puts them
INSTALL_HINT = "apt-get install postgresql"
RUN_AS = "postgres"  # the unprivileged user PostgreSQL runs as when started by root
DB_USER = "seqlab"
DB_NAME = "mlflow"
HOST = "127.0.0.1"
POSTGRES_START_S = 30
MLFLOW_START_S = 90
STOP_S = 20
MLFLOW_WORKERS = "2"
LOG_TAIL = 1500  # characters of a log shown when a program did not start


class StackError(TrackingError):
    """The stack cannot be started, stopped or read; the message says what to do."""


def find_bindir(given: Path | None = None) -> Path | None:
    """PostgreSQL's programs: `given`, else the newest of Debian's versions, else initdb on the PATH."""
    if given is not None:
        return given if (given / "initdb").is_file() else None
    found = sorted(Path("/").glob(POSTGRES_BINDIRS.lstrip("/")), key=lambda p: _version(p.parent.name))
    found = [d for d in found if (d / "initdb").is_file()]
    if found:
        return found[-1]
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


@dataclass
class Stack:
    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    @property
    def postgres_log(self) -> Path:
        return self.root / "postgres.log"

    @property
    def mlflow_log(self) -> Path:
        return self.root / "mlflow.log"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    def state(self) -> dict[str, Any]:
        """Ports and the MLflow server's pid (no secret: the password has its own file)."""
        if not self.state_file.is_file():
            return {}
        return json.loads(self.state_file.read_text())

    def save(self, state: dict[str, Any]) -> None:
        self.state_file.write_text(json.dumps(state, indent=1) + "\n")

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def database_uri(self, state: dict[str, Any], driver: str = "") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{DB_USER}:{self.password()}@{HOST}:{state['pg_port']}/{DB_NAME}"

    def postgres_pid(self) -> int | None:
        """The postmaster's pid from its lock file, when that process is alive."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            return pid if _alive(pid, "postgres") else None
        return None

    def mlflow_pid(self) -> int | None:
        pid = self.state().get("mlflow_pid")
        return pid if isinstance(pid, int) and _alive(pid, "mlflow") else None


def _alive(pid: int, program: str) -> bool:
    """Whether `pid` runs `program` (not some later process that reused the pid)."""
    try:
        return program in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    """Whether a program listens on the port (connections of one just stopped, in TIME_WAIT, do not count:
    PostgreSQL and MLflow's server bind with SO_REUSEADDR too)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _as_postgres_user() -> dict[str, Any]:
    """Popen arguments that run a PostgreSQL program as the user `postgres` when this process is root."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam(RUN_AS)
    except KeyError:
        raise StackError(
            f"PostgreSQL refuses to run as root, and there is no user '{RUN_AS}' to run it as. Install "
            f"PostgreSQL ({INSTALL_HINT}: it creates that user) or start the stack as a regular user."
        ) from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "env": _env_of(user)}


def _env_of(user: pwd.struct_passwd) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": user.pw_dir, "LC_ALL": "C.UTF-8"}


def _give_to_postgres_user(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(RUN_AS)
        os.chown(path, user.pw_uid, user.pw_gid)


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace") if path.is_file() else ""
    return redact(" ".join(text[-LOG_TAIL:].split())) or "(empty)"


def _run(command: list[str], what: str, log: Path | None = None, **kwargs: Any) -> None:
    """Run a PostgreSQL program to its end, as the user `postgres` under root; StackError if it fails."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=POSTGRES_START_S + 10,
            **_as_postgres_user(),
            **kwargs,
        )
    except subprocess.TimeoutExpired:
        raise StackError(f"{what} did not end in {POSTGRES_START_S + 10} s.") from None
    if done.returncode != 0:
        output = " ".join((done.stdout + done.stderr).split())[-LOG_TAIL:]
        logged = f" Its log ({log}): {_tail(log)}" if log is not None else ""
        raise StackError(f"{what} failed (exit status {done.returncode}): {redact(output)}.{logged}")


def _check_reachable_by_postgres(stack: Stack) -> None:
    """Under root, the user `postgres` must be able to enter the stack's folder to use its data there."""
    if os.geteuid() != 0:
        return
    stack.root.chmod(0o711)  # others may enter, not list: the password file stays 0600
    done = subprocess.run(["test", "-x", str(stack.root)], **_as_postgres_user(), check=False)
    if done.returncode != 0:
        raise StackError(
            f"PostgreSQL refuses to run as root, so seqlab runs it as the user '{RUN_AS}', who cannot enter "
            f"{stack.root.resolve()} (a folder above it is closed to other users). Choose a folder that "
            f"user can reach with --root, or start the stack as a regular user."
        )


def _ports(stack: Stack, state: dict[str, Any], pg_port: int | None, port: int | None) -> dict[str, Any]:
    """The ports to use: asked for, else those of the last start (the URIs stay the same), else free ones;
    refused while another program holds one this stack would have to bind."""
    state = dict(state)
    state["pg_port"] = pg_port or state.get("pg_port") or _free_port()
    state["port"] = port or state.get("port") or _free_port()
    if state["pg_port"] == state["port"]:
        raise StackError(f"PostgreSQL and the MLflow server cannot share the port {state['port']}.")
    binds = []
    if stack.postgres_pid() is None:
        binds.append(("PostgreSQL", "--pg-port", state["pg_port"]))
    if stack.mlflow_pid() is None:
        binds.append(("the MLflow server", "--port", state["port"]))
    for who, option, number in binds:
        if not _port_free(number):
            raise StackError(
                f"The port {HOST}:{number} that {who} of the tracking stack in {stack.root} would listen on "
                f"is in use by another program. Stop that program (`ss -tlnp` names it), or choose another "
                f"port with {option} <port> (0 picks a free one)."
            )
    return state


def _init_database(stack: Stack, bindir: Path) -> None:
    """initdb into the stack's folder: password authentication for everyone, the password from its file."""
    if not stack.password_file.is_file():
        fd = os.open(stack.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(16) + "\n")
    if (stack.pgdata / "PG_VERSION").is_file():
        return
    shutil.rmtree(stack.pgdata, ignore_errors=True)  # what a failed initdb left
    stack.pgdata.mkdir(mode=0o700)
    _give_to_postgres_user(stack.pgdata)
    # initdb reads the password from a file; under root it runs as `postgres`, who may read only its own
    pwfile = stack.root / ".initdb-password"
    pwfile.unlink(missing_ok=True)
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(stack.password() + "\n")
    _give_to_postgres_user(pwfile)
    try:
        initdb = [str(bindir / "initdb"), "-D", str(stack.pgdata.resolve()), "-U", DB_USER]
        initdb += ["-A", "scram-sha-256", "--pwfile", str(pwfile.resolve())]
        _run(
            [*initdb, "-E", "UTF8", "--no-locale", "--no-instructions"],
            "initdb",
        )
    except StackError:
        shutil.rmtree(stack.pgdata, ignore_errors=True)
        raise
    finally:
        pwfile.unlink(missing_ok=True)


def _start_postgres(stack: Stack, bindir: Path, pg_port: int) -> None:
    if not stack.postgres_log.exists():
        stack.postgres_log.touch(mode=0o600)
        _give_to_postgres_user(stack.postgres_log)
    # loopback TCP only: no Unix socket either (its default folder may not exist or be writable)
    options = f"-c listen_addresses={HOST} -p {pg_port} -c unix_socket_directories=''"
    pg_ctl = [str(bindir / "pg_ctl"), "start", "-D", str(stack.pgdata.resolve())]
    _run(
        [*pg_ctl, "-w", "-t", str(POSTGRES_START_S), "-l", str(stack.postgres_log.resolve()), "-o", options],
        f"Starting PostgreSQL on {HOST}:{pg_port}",
        log=stack.postgres_log,
    )


def _create_database(stack: Stack, state: dict[str, Any]) -> None:
    import psycopg

    try:
        with psycopg.connect(
            host=HOST, port=state["pg_port"], user=DB_USER, password=stack.password(), dbname="postgres",
            autocommit=True, connect_timeout=10,
        ) as conn:  # fmt: skip
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    except psycopg.Error as exc:
        raise StackError(
            f"Cannot create the database {DB_NAME} on {HOST}:{state['pg_port']}: {exc}"
        ) from None


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


def _start_mlflow(stack: Stack, state: dict[str, Any]) -> int:
    """Start `mlflow server` on the database and wait for its /health; its pid. The database URI goes
    in its environment, which only this user can read, not on its command line, which everyone can."""
    stack.artifacts.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_BACKEND_STORE_URI"] = stack.database_uri(state, driver="psycopg")
    command = [sys.executable, "-m", "mlflow", "server", "--host", HOST, "--port", str(state["port"])]
    command += ["--workers", MLFLOW_WORKERS, "--artifacts-destination", str(stack.artifacts.resolve())]
    with open(stack.mlflow_log, "a") as log:
        proc = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so that stop ends its workers too
        )  # fmt: skip
    deadline = time.monotonic() + MLFLOW_START_S
    while not _healthy(state["port"]):
        if proc.poll() is not None or time.monotonic() > deadline:
            _end_group(proc.pid)
            problem = "exited" if proc.returncode is not None else f"did not answer in {MLFLOW_START_S} s"
            raise StackError(
                f"The MLflow server on http://{HOST}:{state['port']} {problem}. Its log "
                f"({stack.mlflow_log}): {_tail(stack.mlflow_log)}"
            )
        time.sleep(0.5)
    return proc.pid


def _end_group(pid: int) -> None:
    """SIGTERM to the process group `pid` leads, SIGKILL if it is still there after STOP_S."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_S
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when this process started it
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _stop_postgres(pid: int) -> None:
    """Fast shutdown (SIGINT: sessions end, data is flushed), immediate (SIGQUIT) after STOP_S."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_S
    while _alive(pid, "postgres"):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
            return
        time.sleep(0.2)


def start(stack: Stack, bindir: Path | None, pg_port: int | None, port: int | None) -> dict[str, Any]:
    """Start what is not running yet; the state (ports, pid). On failure, stop what this call started."""
    if bindir is None:
        raise StackError(
            f"PostgreSQL's programs (initdb, pg_ctl) are not installed: no {POSTGRES_BINDIRS}/initdb and no "
            f"initdb on the PATH. Install them (`{INSTALL_HINT}` as root on Debian or Ubuntu), or name their "
            "folder with --pg-bin."
        )
    stack.root.mkdir(parents=True, exist_ok=True)
    _check_reachable_by_postgres(stack)
    state = _ports(stack, stack.state(), pg_port, port)
    started_postgres = False
    try:
        _init_database(stack, bindir)
        if stack.postgres_pid() is None:
            _start_postgres(stack, bindir, state["pg_port"])
            started_postgres = True
        _create_database(stack, state)
        # once, before the server's workers would each try to create MLflow's tables
        ensure_schema(stack.database_uri(state), "--pg-port")
        if stack.mlflow_pid() is None:
            state["mlflow_pid"] = _start_mlflow(stack, state)
    except Exception:
        pid = stack.postgres_pid()
        if started_postgres and pid is not None:
            _stop_postgres(pid)
        raise
    stack.save(state)
    return state


def stop(stack: Stack) -> list[str]:
    """Stop the MLflow server and PostgreSQL, by pid; what was stopped."""
    stopped = []
    pid = stack.mlflow_pid()
    if pid is not None:
        _end_group(pid)
        stopped.append(f"the MLflow server (pid {pid})")
    pid = stack.postgres_pid()
    if pid is not None:
        _stop_postgres(pid)
        stopped.append(f"PostgreSQL (pid {pid})")
    return stopped


def server_uri(state: dict[str, Any]) -> str:
    return f"http://{HOST}:{state['port']}"


def _command(stack: Stack, action: str) -> str:
    root = "" if stack.root == DEFAULT_ROOT else f" --root {stack.root}"
    return f"{as_typed('python')} -m seqlab.tracking.stack {action}{root}"


def _started_text(stack: Stack, state: dict[str, Any], was_running: bool) -> str:
    user = f", run as the user {RUN_AS}" if os.geteuid() == 0 else ""
    head = "The tracking stack was running already" if was_running else "The tracking stack runs"
    return paragraph(
        f"{head}: PostgreSQL on {HOST}:{state['pg_port']} (pid {stack.postgres_pid()}{user}; data in "
        f"{stack.pgdata}, password in {stack.password_file}) and the MLflow server on {server_uri(state)} "
        f"(pid {state['mlflow_pid']}; artifacts in {stack.artifacts}, log {stack.mlflow_log}). Stop both "
        f"with `{_command(stack, 'stop')}` (make server-stop). To log straight to the database instead, "
        f'export MLFLOW_TRACKING_URI="$({_command(stack, "uri --database")})". Log through the server with:'
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m seqlab.tracking.stack",
        description="PostgreSQL and an MLflow server on it, on 127.0.0.1, with their data under --root.",
    )
    parser.add_argument("action", choices=["start", "stop", "status", "uri"])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"default: {DEFAULT_ROOT}")
    parser.add_argument("--port", type=int, default=None, help="the MLflow server's (default: a free one)")
    parser.add_argument("--pg-port", type=int, default=None, help="PostgreSQL's (default: a free one)")
    parser.add_argument("--pg-bin", type=Path, default=None, help=f"default: {POSTGRES_BINDIRS}")
    parser.add_argument(
        "--database", action="store_true", help="uri: the database's URI, password included, not the server's"
    )
    args = parser.parse_args(argv)
    stack = Stack(args.root)
    try:
        if args.action == "start":
            was_running = stack.postgres_pid() is not None and stack.mlflow_pid() is not None
            state = start(stack, find_bindir(args.pg_bin), args.pg_port, args.port)
            say(_started_text(stack, state, was_running))
            say(f"tracking.uri={server_uri(state)}")
        elif args.action == "stop":
            stopped = stop(stack)
            say(f"Stopped {' and '.join(stopped)}." if stopped else f"Nothing runs from {stack.root}.")
        elif args.action == "status":
            state, pg, ml = stack.state(), stack.postgres_pid(), stack.mlflow_pid()
            say(f"PostgreSQL: pid {pg} on {HOST}:{state['pg_port']}" if pg else "PostgreSQL: not running")
            say(f"MLflow server: pid {ml} on {server_uri(state)}" if ml else "MLflow server: not running")
            return 0 if pg and ml else 1
        else:
            state = stack.state()
            if not state:
                raise StackError(
                    f"No tracking stack in {stack.root}: start one with `{_command(stack, 'start')}`."
                )
            say(stack.database_uri(state) if args.database else server_uri(state))
    except (TrackingError, OSError) as exc:
        say(paragraph(redact(str(exc))), sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
