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
