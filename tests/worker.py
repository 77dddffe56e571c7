"""A real Celery worker process on Redis, working against the test database.

Tests run tasks in-process by default (see conftest). A test that takes the
`celery_worker_process` fixture sends its tasks through the broker instead, on a queue of its
own, to a worker started as a separate process with the test database's URL. `worker_factory`
gives the worker itself, to kill and restart it.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery.utils.nodenames import gethostname
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parent.parent


def _database_url():
    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("真实 Celery worker 测试需要 PostgreSQL：请设置 DATABASE_URL（make test 会设置）")
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


class WorkerProcess:
    """`celery worker` as a process group of its own, on its own queue, against the test database.

    `kill()` SIGKILLs the whole group (main process and pool children), as the OOM killer or a
    power cut would; `start()` again brings up a worker under the same node name, as systemd would.
    """

    def __init__(self, queue, log_dir, pool="solo", **env):
        self.queue = queue
        self.log_dir = log_dir
        self.pool = pool
        self.nodename = f"{queue}@{gethostname()}"
        self.proc = None
        self.log_path = None
        self.starts = 0
        self.env = dict(os.environ)
        self.env.update(
            DATABASE_URL=_database_url(),
            CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
            CELERY_QUEUE=queue,
            MEDIA_ROOT=str(settings.MEDIA_ROOT),
            DB_CONN_MAX_AGE="0",
            **env,
        )

    def start(self):
        self.starts += 1
        self.log_path = self.log_dir / f"worker-{self.starts}.log"
        pool = ["--pool=solo"] if self.pool == "solo" else [f"--pool={self.pool}", "--concurrency=1"]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", *pool, "--loglevel=INFO",
                 "--without-heartbeat", "--without-gossip", "--without-mingle", "-n", self.nodename],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while "ready." not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Celery worker 未能启动：\n{self.log()[-3000:]}")
            time.sleep(0.2)
        return self

    def log(self):
        return self.log_path.read_text()

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def forget_unacknowledged(self):
        """Drop this queue's messages a killed worker left unacknowledged in Redis: restored after
        the visibility timeout into a queue nobody reads, they would only clutter the test Redis."""
        import json

        import redis

        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        for tag, raw in client.hgetall("unacked").items():
            try:
                routing_key = json.loads(raw)[2]
            except (ValueError, IndexError, TypeError):
                continue
            if routing_key == self.queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)


@pytest.fixture
def worker_factory(transactional_db, tmp_path):
    """worker_factory(pool="solo", **env) → a started WorkerProcess; tasks sent from the test go to it."""
    if not settings.CELERY_BROKER_URL:
        pytest.fail("真实 Celery worker 测试需要 Redis：请设置 CELERY_BROKER_URL（make test 会设置）")
    started = []
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_default_queue)

    def make(pool="solo", **env):
        worker = WorkerProcess(f"test-{uuid.uuid4().hex[:12]}", tmp_path, pool, **env)
        started.append(worker)
        celery_app.conf.task_always_eager = False
        celery_app.conf.task_default_queue = worker.queue
        return worker.start()

    try:
        yield make
    finally:
        celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = previous
        for worker in started:
            worker.stop()
            worker.forget_unacknowledged()


@pytest.fixture
def celery_worker_process(worker_factory):
    return worker_factory().proc


def wait_for(predicate, timeout=60, interval=0.2, message="等待后台任务超时"):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(message)
