"""The embedded PostgreSQL of `make run` (config/embedded_db): a real cluster from the wheel in a
temporary data directory, on a free port; the portal migrates on it with no DATABASE_URL and
settles a scheme whose SQL only PostgreSQL runs."""
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_YEAR = "2025"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def embedded(request):
    """Environment for commands on a fresh embedded cluster; the cluster is stopped and deleted after."""
    # Not under pytest's tmp_path: that is private to root, and as root the server runs as portal-pg.
    base = Path(tempfile.mkdtemp(prefix="portal-embedded-"))
    base.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(EMBEDDED_DB_DIR=str(base / "pgdata"), EMBEDDED_DB_PORT=str(_free_port()))
    yield env
    subprocess.run([sys.executable, "-m", "config.embedded_db", "stop"], cwd=ROOT, env=env, capture_output=True)
    shutil.rmtree(base, ignore_errors=True)


def run(env, *args, check=True, timeout=300):
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def embedded_db(env, command, **kwargs):
    return run(env, sys.executable, "-m", "config.embedded_db", command, **kwargs)


def manage(env, *args, **kwargs):
    return run(env, sys.executable, "manage.py", *args, **kwargs)


def test_start_is_idempotent_stop_stops_and_the_portal_says_when_it_is_down(embedded):
    data, port = Path(embedded["EMBEDDED_DB_DIR"]), embedded["EMBEDDED_DB_PORT"]
    url = f"postgres://postgres@127.0.0.1:{port}/portal"
    assert embedded_db(embedded, "status", check=False).returncode == 3
    assert embedded_db(embedded, "url").stdout.strip() == url

    first = embedded_db(embedded, "start")
    assert first.stdout.strip() == url  # stdout is the URL only, for DATABASE_URL=$(… start)
    assert "已初始化" in first.stderr and "已启动" in first.stderr
    assert (data / "PG_VERSION").read_text().strip() == "18"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    if os.geteuid() == 0:  # PostgreSQL refuses root: a system user owns and runs the cluster
        assert pwd.getpwuid(data.stat().st_uid).pw_name == "portal-pg"
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database(), current_setting('server_version_num')::int >= 180000").fetchone() \
            == ("portal", True)

    again = embedded_db(embedded, "start")
    assert again.stdout.strip() == url and "已在运行" in again.stderr and "已初始化" not in again.stderr
    assert embedded_db(embedded, "status").returncode == 0

    embedded_db(embedded, "stop")
    assert embedded_db(embedded, "status", check=False).returncode == 3
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)
    down = manage(embedded, "migrate", "--check", check=False)
    assert down.returncode != 0
    assert "嵌入式 PostgreSQL 未运行" in down.stderr and "make db-start" in down.stderr

    # a second start reuses the cluster (and its database)
    assert "已初始化" not in embedded_db(embedded, "start").stderr
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("portal",)


def test_start_refuses_a_taken_port_with_the_server_log(embedded):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = embedded | {"EMBEDDED_DB_PORT": str(taken.getsockname()[1])}
        result = embedded_db(env, "start", check=False)
    assert result.returncode == 1 and result.stdout == ""
    assert "嵌入式 PostgreSQL 启动失败" in result.stderr
    assert "Address already in use" in result.stderr  # the server log's tail
    assert "EMBEDDED_DB_PORT" in result.stderr


PAGES = """
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(username="demo"))
for url, row in (("/admin/alliances/dashboard/?year=%(year)s", "<th>达成度</th>"),
                 ("/admin/settlement/drggroup/calibration/?year=%(next)s", 'class="proposal'),
                 ("/admin/settlement/beddayquota/monitoring/?year=%(year)s", 'class="monitoring-row"')):
    response = client.get(url)
    print(url.split("?")[0], response.status_code, response.content.decode().count(row) > 0)
from settlement.engine.models import SettlementRun
from django.db import connection
with connection.cursor() as cursor:  # seed_demo's VACUUM set the visibility map: index-only scans stay so
    cursor.execute("SELECT relallvisible > 0 FROM pg_class WHERE relname = 'settlement_outpatientclaim'")
    print("claims all-visible", cursor.fetchone()[0])
print("runs", list(SettlementRun.objects.filter(scheme="drg", year=%(year)s).values_list("status", flat=True)))
"""


@pytest.mark.slow
def test_the_portal_migrates_and_settles_drg_on_the_embedded_default(embedded):
    embedded_db(embedded, "start")
    # no DATABASE_URL: settings take the embedded cluster's
    manage(embedded, "migrate", "--noinput", "-v0")
    seeded = manage(embedded, "seed_demo", "--size", "small", "--year", DEMO_YEAR)
    assert "数据库已整理（VACUUM ANALYZE" in seeded.stdout, seeded.stdout + seeded.stderr
    settled = manage(embedded, "settle", "drg", "--year", DEMO_YEAR, "--sync")
    assert "Traceback" not in settled.stderr
    assert "已计算" in settled.stdout
    pages = manage(embedded | {"ALLOWED_HOSTS": "testserver"}, "shell", "-v0", "-c",
                   PAGES % {"year": DEMO_YEAR, "next": int(DEMO_YEAR) + 1})
    lines = pages.stdout.splitlines()
    # the KPI dashboard (PostgreSQL-only SQL), DRG 测算 and bed-day monitoring answer with their figures
    assert "/admin/alliances/dashboard/ 200 True" in lines, pages.stdout + pages.stderr
    assert "/admin/settlement/drggroup/calibration/ 200 True" in lines, pages.stdout
    assert "/admin/settlement/beddayquota/monitoring/ 200 True" in lines, pages.stdout
    assert "runs ['computed']" in lines, pages.stdout
    assert "claims all-visible True" in lines, pages.stdout
