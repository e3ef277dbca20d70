"""``dljobs up``, ``dljobs api``, ``dljobs worker`` and ``dljobs db upgrade``.

``up`` runs the whole service on one machine with no configuration: SQLite, a Celery
filesystem transport, gunicorn serving the API and N Celery worker processes, all
children of this process and stopped together by one Ctrl-C.  The parts start by
name (``api:create_app()``, ``workers.celery_app``): dljobs imports neither.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from dljobs.processes import group_members

#: How long workers get to checkpoint and hand their jobs back before they are killed.
GRACE_S = 10.0


def _apply_data_dir(data_dir: str | None) -> None:
    # Children read their settings from the environment, so the option goes there.
    if data_dir:
        os.environ["DLJOBS_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())


def _settings():
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.settings import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    return settings


#: Host names the API answers to without configuration (``DLJOBS_ALLOWED_HOSTS``' default).
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]", "")


def _allow_bound_host(host: str) -> None:
    """Let the API answer to the address it is bound to, unless DLJOBS_ALLOWED_HOSTS says otherwise.

    The Host check (``api.auth``) closes DNS rebinding; it must still accept the name a
    client uses.  Bound to every address (0.0.0.0) that is this machine's names too;
    any other public name (a proxy's) goes in DLJOBS_ALLOWED_HOSTS.
    """
    if os.environ.get("DLJOBS_ALLOWED_HOSTS"):
        return
    names = list(LOOPBACK_HOSTS)
    if host in WILDCARD_HOSTS:
        # deferred: only a server bound to every address needs this machine's names
        import socket

        names += [socket.gethostname(), socket.getfqdn()]
    elif host not in names:
        names.append(f"[{host}]" if ":" in host else host)
    os.environ["DLJOBS_ALLOWED_HOSTS"] = ",".join(dict.fromkeys(n.lower() for n in names if n))


def _local_admin_token(settings) -> str:
    """The admin token in ``<data-dir>/token``, made (0600, data dir 0700) when the database lacks it."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.db.session import session_factory
    from dljobs.tokens import ensure_token_file

    with session_factory(settings)() as session:
        return ensure_token_file(session, settings.token_path)


def login_url(host: str, port: int, token: str) -> str:
    """The URL that logs a browser in (``api.pages``); loopback when bound to every address."""
    shown = "127.0.0.1" if host in WILDCARD_HOSTS or host == "localhost" else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}/?token={token}"


#: gunicorn threads of one API process: its event streams (DLJOBS_SSE_MAX_STREAMS' default,
#: 128) plus 8 spare for every other request.  ``dljobs up`` and ``dljobs api`` run this many.
API_THREADS = 128 + 8


def api_command(bind: str, threads: int = API_THREADS, workers: int = 1) -> list[str]:
    """gunicorn with threaded workers, so open event streams never starve other requests.

    ``bind`` is ``host:port`` or ``unix:/path``; behind the front door it is a private address.
    """
    return [
        sys.executable, "-m", "gunicorn",
        "-k", "gthread", "--threads", str(threads), "-w", str(workers),
        "-b", bind,
        "--graceful-timeout", "5", "--timeout", "120",
        "-c", "python:api.warmup",  # each process builds its registry and pools before it serves
        "api:create_app()",
    ]  # fmt: skip


def frontdoor_command(host: str, port: int, upstream: str) -> list[str]:
    """The asyncio front door on the public address: it reads whole requests, so slow
    clients never hold a gunicorn thread, then forwards them to ``upstream``."""
    return [sys.executable, "-m", "dljobs.frontdoor", "--host", host, "--port", str(port), "--upstream", upstream]


def _private_upstream(settings) -> str:
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.embedded import free_port
    from dljobs.frontdoor import private_upstream

    return private_upstream(settings.data_path, free_port)


def worker_command(index: int | None = None, concurrency: int = 1, loglevel: str = "INFO") -> list[str]:
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.settings import get_settings

    name = f"worker{index}@%h" if index is not None else "worker@%h"
    return [
        sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
        "--pool", "prefork", "--concurrency", str(concurrency),
        "-Q", get_settings().queue_name, "-n", name, "--loglevel", loglevel,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip


@click.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.option("--data-dir", default=None, help="Data directory (DLJOBS_DATA_DIR).")
def db_upgrade(revision: str, data_dir: str | None) -> None:
    """Bring the database (DLJOBS_DATABASE_URL) to the latest schema with Alembic."""
    _apply_data_dir(data_dir)
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.db.migrate import upgrade

    settings = _settings()
    upgrade(settings.effective_database_url, revision)
    click.echo(f"database at {revision}: {_safe_url(settings.effective_database_url)}")


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=API_THREADS, show_default=True, type=click.IntRange(9, 1024),
              help="gunicorn threads per process; event streams may take all but 8.")
@click.option("-w", "--workers", "n_processes", default=1, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes.")
@click.option("--front-door/--no-front-door", default=True, show_default=True,
              help="Serve through dljobs' asyncio front door, which reads whole requests before "
              "gunicorn sees them (slow clients never hold a thread). Use --no-front-door behind "
              "nginx or another buffering proxy, which already does this.")
@click.option("--data-dir", default=None, help="Data directory (DLJOBS_DATA_DIR).")
def api(host: str, port: int, threads: int, n_processes: int, front_door: bool, data_dir: str | None) -> None:
    """Serve the HTTP API under gunicorn (gthread workers)."""
    reason = port_in_use_reason(host, port)
    if reason:
        click.echo(f"dljobs api: {reason}", err=True)
        sys.exit(1)
    _apply_data_dir(data_dir)
    # Eight threads stay free of event streams for every other request.
    os.environ.setdefault("DLJOBS_SSE_MAX_STREAMS", str(threads - 8))
    _allow_bound_host(host)
    settings = _settings()
    if not front_door:
        os.execv(sys.executable, api_command(f"{host}:{port}", threads, n_processes))
    upstream = _private_upstream(settings)
    sys.exit(_serve_behind_front_door(host, port, upstream, api_command(upstream, threads, n_processes), settings))


def _serve_behind_front_door(host: str, port: int, upstream: str, gunicorn: list[str], settings) -> int:
    """gunicorn as our child on ``upstream``, the front door in this process on host:port."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    import asyncio

    from dljobs import frontdoor

    # gunicorn dies with us even on SIGKILL (PR_SET_PDEATHSIG), so a killed API frees its socket.
    child = subprocess.Popen(gunicorn, preexec_fn=_die_with_parent)  # noqa: PLW1509 - one prctl call

    async def run() -> None:
        stop = asyncio.Event()

        async def watch_child() -> None:
            while child.poll() is None:
                await asyncio.sleep(0.5)
            stop.set()

        watcher = asyncio.create_task(watch_child())
        await frontdoor.serve(host, port, upstream, frontdoor.Limits.from_settings(settings), stop=stop)
        watcher.cancel()

    try:
        asyncio.run(run())
    finally:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return child.returncode if child.returncode and child.returncode > 0 else 0


def _die_with_parent() -> None:
    # deferred: ctypes only in the forked child, and only on Linux where prctl exists
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@click.command("worker")
@click.option("--concurrency", default=1, show_default=True, type=int)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--data-dir", default=None, help="Data directory (DLJOBS_DATA_DIR).")
def worker(concurrency: int, loglevel: str, data_dir: str | None) -> None:
    """Run a Celery training worker (one job per process at a time)."""
    _apply_data_dir(data_dir)
    settings = _settings()
    os.environ.update(settings.blas_env())  # before the worker's NumPy loads its BLAS
    os.execv(sys.executable, worker_command(None, concurrency, loglevel))


def port_in_use_reason(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be served on, or None when it is free.

    Bound the way the front door binds (``SO_REUSEADDR``, as asyncio does), so a port
    left in TIME_WAIT by a stopped service is free here as it is there.
    """
    # deferred: only `dljobs up` and `dljobs api` check their port
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot serve on {host}: {exc.strerror}"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return (f"port {port} on {host} is already in use (another dljobs up?); "
                            "stop it or choose another port with --port")
                if exc.errno == errno.EACCES:
                    return f"port {port} on {host} needs privileges; choose one above 1023 with --port"
                return f"cannot serve on {host}:{port}: {exc.strerror}"
    return None


def banner(url: str, settings, n_workers: int, log_dir: Path | None, resent: int) -> str:
    """What ``dljobs up`` says once: where to log in, where the data is, how many workers."""
    logs = f"logs in {log_dir} (--verbose shows them here)" if log_dir else "logs below"
    lines = [
        f"dljobs up: {url}  (this URL logs a browser in)",
        f"  data     {settings.data_path} (the token for scripts and the CLI: {settings.token_path})",
        f"  workers  {n_workers}, {logs}",
    ]
    if resent:
        lines.append(f"  queue    {resent} queued job(s) sent again")
    return "\n".join(lines)


@click.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", "n_workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--data-dir", default=None, help="Data directory (DLJOBS_DATA_DIR).")
@click.option("-v", "--verbose", is_flag=True,
              help="Show the API's and workers' own logs here (else in <data_dir>/logs).")
@click.option("--quiet", is_flag=True, hidden=True, help="The default now; kept for old scripts.")
def up(host: str, port: int, n_workers: int, data_dir: str | None, verbose: bool, quiet: bool) -> None:
    """Run the API and N workers on this machine; Ctrl-C stops them all."""
    reason = port_in_use_reason(host, port)
    if reason:  # before anything says it serves, and before the database is touched
        click.echo(f"dljobs up: {reason}", err=True)
        sys.exit(1)
    _apply_data_dir(data_dir)
    settings = _settings()
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs.db.migrate import upgrade
    from dljobs.jobstore import reconcile_queue

    upgrade(settings.effective_database_url)
    token = _local_admin_token(settings)
    _allow_bound_host(host)
    sent = reconcile_queue(settings, older_than_s=0)
    log_dir = None if verbose else settings.data_path / "logs"
    click.echo(banner(login_url(host, port, token), settings, n_workers, log_dir, len(sent)), err=True)
    supervisor = Supervisor(log_dir)
    upstream = _private_upstream(settings)
    supervisor.start("api", api_command(upstream))
    supervisor.start("frontdoor", frontdoor_command(host, port, upstream))
    for i in range(1, n_workers + 1):
        supervisor.start(f"worker{i}", worker_command(i), env=dict(os.environ, **settings.blas_env()))
    sys.exit(supervisor.wait())


#: How much of a child's log ``dljobs up`` shows when the child exits on its own.
EXIT_LOG_TAIL_LINES = 20


class Supervisor:
    """Children in their own process groups; a signal to us stops each of them.

    SIGINT, SIGTERM and SIGHUP (a closed terminal) stop the service in order: workers get
    SIGTERM (a warm shutdown: the running job checkpoints and is handed back), everything
    gets up to ``GRACE_S`` and is then killed.  A second signal means now: every child is
    killed at once.  Either way the jobs our workers held are handed back, and no child
    outlives us.
    """

    def __init__(self, log_dir: Path | None = None):
        self.children: dict[str, subprocess.Popen] = {}
        self.log_dir = log_dir
        self.log_starts: dict[str, int] = {}  # where this run's part of each child's log begins
        self.unready: set[str] = set()  # workers not yet announced as ready
        self.stopping = threading.Event()
        self.now = threading.Event()  # a second signal: kill without waiting
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def start(self, name: str, argv: list[str], env: dict | None = None) -> None:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - held by the child
            self.log_starts[name] = out.tell()
            if name.startswith("worker"):
                self.unready.add(name)
        # Own session: a terminal's Ctrl-C reaches only us, and we stop the children in order.
        self.children[name] = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True, env=env
        )

    def _on_signal(self, signum, _frame) -> None:
        if self.stopping.is_set():
            self.now.set()
        self.stopping.set()

    def wait(self) -> int:
        code = 0
        while not self.stopping.is_set():
            self._announce_ready_workers()
            for name, child in self.children.items():
                if child.poll() is not None:
                    tail = self.log_tail(name)
                    if tail:
                        click.echo(f"dljobs up: the end of {self.log_dir / (name + '.log')}:\n{tail}", err=True)
                    click.echo(f"dljobs up: {name} exited with {child.returncode}; stopping", err=True)
                    code = child.returncode or 1
                    self.stopping.set()
                    break
            self.stopping.wait(0.5)
        self.stop()
        return code

    def _this_run_log(self, name: str) -> str:
        if self.log_dir is None or name not in self.log_starts:
            return ""
        try:
            with open(self.log_dir / f"{name}.log", "rb") as log:
                log.seek(self.log_starts[name])
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, name: str, lines: int = EXIT_LOG_TAIL_LINES) -> str:
        """The last lines ``name`` logged in this run (nothing when its logs are on the terminal)."""
        return "\n".join(self._this_run_log(name).rstrip().splitlines()[-lines:])

    def _announce_ready_workers(self) -> None:
        """One line per worker once it takes jobs (Celery's own "ready." line, found in its log).

        The same words as Celery's, so whoever waits for workers in ``dljobs up``'s output
        (``dljobs.embedded.wait_workers_ready``) reads them with or without ``--verbose``.
        """
        # deferred: the pattern lives with the code that waits for it
        from dljobs.embedded import WORKER_READY

        for name in sorted(self.unready):
            found = WORKER_READY.search(self._this_run_log(name).encode())
            if found:
                self.unready.discard(name)
                click.echo(f"dljobs up: {name}{found.group().decode()}", err=True)  # worker1@host ready.

    def stop(self) -> None:
        click.echo("dljobs up: stopping", err=True)
        worker_pids = [
            pid
            for name, child in self.children.items()
            if name.startswith("worker")
            for pid in group_members(child.pid)
        ]
        for child in self.children.values():
            if child.poll() is None:
                # SIGTERM to the leader only: Celery's warm shutdown (it asks its pool
                # children to hand their jobs back, see workers.celery_app), gunicorn's graceful one.
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline and not self.now.is_set():
            if all(child.poll() is not None for child in self.children.values()):
                break
            self.now.wait(0.1)
        for child in self.children.values():
            # the group, even when its leader is gone: a pool child must not outlive us
            _signal_group(child, signal.SIGKILL)
            child.wait()
        _release_jobs(worker_pids)


def _release_jobs(pids: list[int]) -> None:
    """Jobs our workers held are released so the next start resumes them at once."""
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    import socket

    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from dljobs import jobstore
    from dljobs.db.session import session_factory

    try:
        with session_factory()() as session:
            released = jobstore.release_workers(session, socket.gethostname(), pids)
        if released:
            click.echo(f"dljobs up: {len(released)} running job(s) will resume at the next start", err=True)
    except Exception as exc:  # noqa: BLE001 - the heartbeat timeout frees them anyway
        click.echo(f"dljobs up: could not release running jobs: {exc}", err=True)


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except ProcessLookupError:
        pass


def _safe_url(url: str) -> str:
    # deferred: each command imports only what it runs (`dljobs --help` in 0.2 s, not 0.6 s)
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)

