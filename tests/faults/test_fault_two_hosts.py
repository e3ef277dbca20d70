"""Fault 7: two worker hosts, each in a network namespace of its own that reaches PostgreSQL
and Redis only through its veth link (a TCP forwarder in the root namespace).  Both train; one
host's link is cut mid-job (`ip link set ... down`); the other host finishes that job from its
checkpoint.  The namespaces, links and workers are removed even when the test fails."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from dljobs import jobstore, testsupport
from dljobs.db.models import Job
from dljobs.db.session import session_factory
from dljobs.embedded import wait_workers_ready
from dljobs.lifecycle import JobStatus
from dljobs.settings import Settings
from tests.conftest import require_service

pytestmark = [pytest.mark.fault, pytest.mark.service]

HEARTBEAT_TIMEOUT_S = 5


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _can_make_namespaces() -> bool:
    if shutil.which("ip") is None or os.geteuid() != 0:
        return False
    probe = f"dlj7probe{secrets.token_hex(2)}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, OSError):
        return False
    _ip("netns", "del", probe)
    return True


class Forwarder:
    """Accepts on ``listen`` and pipes each connection to ``target`` (a root-namespace service)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]):
        self.target = target
        self.server = socket.create_server(listen, reuse_port=False)
        self.sockets: list[socket.socket] = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        for s in self.sockets:
            s.close()


@contextmanager
def namespace_host(tag: str, subnet: str, stack: ExitStack):
    """A namespace ``tag`` linked to the root one by a veth pair; yields (host-side link, its address)."""
    name, link, peer = f"dlj7{tag}", f"d7{tag}", f"d7{tag}p"
    root_ip, ns_ip = f"{subnet}.1", f"{subnet}.2"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", link, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", name)
        _ip("addr", "add", f"{root_ip}/30", "dev", link)
        _ip("link", "set", link, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{ns_ip}/30", "dev", peer)
        _ip("netns", "exec", name, "ip", "link", "set", peer, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        for port in (5432, 6379):
            stack.callback(Forwarder((root_ip, port), ("127.0.0.1", port)).close)
        yield name, link, root_ip
    finally:
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False, timeout=10)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=10)


def _long_spec(seed: int) -> dict:
    return {
        "name": f"fault7-{seed}",
        "dataset": {"type": "digits", "preprocess": [{"type": "std"}]},
        "model": {"layers": [{"type": "affine", "units": 64}, {"type": "relu"}, {"type": "affine", "units": 10}]},
        "optimizer": {"type": "adam", "lr": 0.001},
        "training": {"epochs": 150, "batch_size": 32, "seed": seed, "checkpoint_every": 5},
    }


def _job(settings: Settings, job_id: str) -> Job:
    with session_factory(settings)() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
        return job


def _wait(settings: Settings, job_ids, predicate, timeout_s: float, what: str) -> list[Job]:
    deadline = time.monotonic() + timeout_s
    while True:
        jobs = [_job(settings, job_id) for job_id in job_ids]
        if predicate(jobs):
            return jobs
        assert time.monotonic() < deadline, f"{what}: {[(j.status, j.attempt, j.worker_pid) for j in jobs]}"
        time.sleep(0.2)


def _namespace_pids(name: str) -> set[int]:
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False, timeout=10)
    return {int(p) for p in out.stdout.split()}


def test_a_host_cut_off_mid_job_leaves_the_job_to_the_other_host(tmp_path):
    require_service(testsupport.postgres_available(), "PostgreSQL on 127.0.0.1:5432")
    require_service(testsupport.redis_available(), "Redis on 127.0.0.1:6379")
    require_service(_can_make_namespaces(), "root and `ip netns` (network namespaces)")
    tag = secrets.token_hex(2)
    octet2, octet3 = 100 + secrets.randbelow(100), secrets.randbelow(250)
    dljobs_cli = str(Path(sys.executable).parent / "dljobs")
    with (testsupport.fresh_postgres_database() as db_url, testsupport.fresh_redis_url() as redis_url,
          ExitStack() as stack):
        settings = Settings(database_url=db_url, broker_url=redis_url, data_dir=tmp_path / "root")
        subprocess.run([dljobs_cli, "db", "upgrade"], env=dict(os.environ, DLJOBS_DATABASE_URL=db_url),
                       check=True, capture_output=True, timeout=120)
        hosts, workers = {}, {}
        for offset, letter in enumerate("ab"):
            subnet = f"10.{octet2}.{(octet3 + offset) % 250}"
            name, link, root_ip = stack.enter_context(namespace_host(f"{tag}{letter}", subnet, stack))
            hosts[letter] = (name, link)
            env = dict(
                os.environ,
                DLJOBS_DATABASE_URL=db_url.replace("@127.0.0.1:", f"@{root_ip}:"),
                DLJOBS_BROKER_URL=redis_url.replace("127.0.0.1", root_ip),
                DLJOBS_DATA_DIR=str(tmp_path / f"host-{letter}"),
                DLJOBS_HEARTBEAT_TIMEOUT_S=str(HEARTBEAT_TIMEOUT_S),
                DLJOBS_RECONCILE_AFTER_S="2",
                DLJOBS_CHECKPOINT_INTERVAL_S="0.5",
            )
            log = tmp_path / f"worker-{letter}.log"
            with open(log, "wb") as out:
                worker = subprocess.Popen(["ip", "netns", "exec", name, dljobs_cli, "worker"], env=env,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            workers[letter] = (worker, log)
            stack.callback(testsupport.stop_process_group, worker, 3)
        wait_workers_ready([log for _, log in workers.values()], 2, 60)

        ids = []
        for seed in (1, 2):
            with session_factory(settings)() as session:
                ids.append(jobstore.create_job(session, _long_spec(seed), None).id)
            jobstore.enqueue(ids[-1], settings)
        running = _wait(settings, ids, lambda js: all(j.status == JobStatus.RUNNING and j.progress for j in js),
                        60, "both hosts train")
        pids_a = _namespace_pids(hosts["a"][0])
        cut = next(j for j in running if j.worker_pid in pids_a)
        other = next(j for j in running if j is not cut)
        assert other.worker_pid not in pids_a, "each host trains one of the jobs"
        _wait(settings, [cut.id], lambda js: (js[0].progress.get("epoch") or 0) >= 5, 30, "a checkpoint is stored")

        _ip("link", "set", hosts["a"][1], "down")  # host a is cut off mid-job

        finished = _wait(settings, [cut.id, other.id],
                         lambda js: all(j.status == JobStatus.SUCCEEDED for j in js), 50,
                         "host b finishes both jobs")
        pids_b = _namespace_pids(hosts["b"][0])
        assert finished[0].worker_pid in pids_b, "the cut host's job finished on the other host"
        assert finished[0].attempt == 2
        log_b = workers["b"][1].read_text(errors="replace")
        assert f"job {cut.id}: resuming from the checkpoint" in log_b, "it resumed, not restarted"
