"""The embedded SQLite mode (make run with no DATABASE_URL) settles what it can and says clearly what it cannot."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'portal.sqlite3'}"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return env


def manage(env, *args):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["drg", "bed_day", "disease"])
def test_postgresql_only_schemes_are_refused_in_chinese_on_sqlite(sqlite_env, scheme):
    result = manage(sqlite_env, "settle", scheme, "--year", "2025", "--sync")
    assert result.returncode != 0
    assert "嵌入式SQLite数据库不支持" in result.stderr
    assert "Traceback" not in result.stderr


PAGES = """
from django.contrib.auth import get_user_model
from django.test import Client
user = get_user_model().objects.create_superuser("sqlite_pages", password="x-Unused-2026")
client = Client()
client.force_login(user)
for url in ("/admin/settlement/drggroup/calibration/?year=2026", "/admin/settlement/beddayquota/monitoring/?year=2025"):
    response = client.get(url)
    print(url, response.status_code, "嵌入式SQLite数据库不支持" in response.content.decode())
"""


@pytest.mark.slow
def test_postgresql_only_pages_say_so_in_chinese_on_sqlite(sqlite_env):
    result = manage(sqlite_env | {"ALLOWED_HOSTS": "testserver"}, "shell", "-c", PAGES)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert any(line.startswith("/admin/settlement/drggroup/calibration/") and line.endswith(" 200 True") for line in lines)
    assert any(line.startswith("/admin/settlement/beddayquota/monitoring/") and line.endswith(" 200 True") for line in lines)
