"""Settings come from the environment: each case loads them in a fresh interpreter."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json, django
django.setup()
from django.conf import settings
from config.celery import app
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST"), "port": db.get("PORT"),
    "options": db.get("OPTIONS", {}),
    "settings_eager": settings.CELERY_TASK_ALWAYS_EAGER, "app_eager": app.conf.task_always_eager,
    "broker": app.conf.broker_url,
    "language": settings.LANGUAGE_CODE, "time_zone": settings.TIME_ZONE, "use_tz": settings.USE_TZ,
    "debug": settings.DEBUG, "allowed_hosts": settings.ALLOWED_HOSTS, "secret_key": settings.SECRET_KEY,
    "queue": settings.CELERY_TASK_DEFAULT_QUEUE,
}))
"""

_OURS = {
    "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_QUEUE", "DEBUG", "ALLOWED_HOSTS",
    "SECRET_KEY", "DJANGO_REQUIRE_SECRET_KEY", "CSRF_TRUSTED_ORIGINS", "SECURE_COOKIES", "DB_CONN_MAX_AGE",
}


def _load(**env):
    clean = {k: v for k, v in os.environ.items() if k not in _OURS}
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings"
    clean.update(env)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_nothing_set_means_sqlite_file_and_tasks_in_process():
    loaded = _load()
    assert loaded["engine"] == "django.db.backends.sqlite3"
    assert loaded["name"] == str(ROOT / "db.sqlite3")
    assert loaded["options"] == {"timeout": 30}
    assert loaded["settings_eager"] is True
    assert loaded["app_eager"] is True


def test_database_url_selects_postgresql():
    loaded = _load(DATABASE_URL="postgres://alice@db.example:6543/portal_x")
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert (loaded["name"], loaded["host"], loaded["port"]) == ("portal_x", "db.example", 6543)
    assert "timeout" not in loaded["options"]


def test_broker_url_turns_off_in_process_tasks():
    loaded = _load(CELERY_BROKER_URL="redis://127.0.0.1:6379/9")
    assert loaded["settings_eager"] is False
    assert loaded["app_eager"] is False
    assert loaded["broker"] == "redis://127.0.0.1:6379/9"


def test_language_and_time_zone():
    loaded = _load()
    assert loaded["language"] == "zh-hans"
    assert loaded["time_zone"] == "Asia/Shanghai"
    assert loaded["use_tz"] is True


def test_debug_and_allowed_hosts_defaults():
    loaded = _load()
    assert loaded["debug"] is False
    assert loaded["allowed_hosts"] == ["127.0.0.1", "localhost"]


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("Yes", True), ("0", False), ("off", False), ("", False)])
def test_debug_from_env(value, expected):
    assert _load(DEBUG=value)["debug"] is expected


def test_allowed_hosts_from_env():
    loaded = _load(ALLOWED_HOSTS="ybj.huzhou.gov.cn, 10.0.0.5 ,")
    assert loaded["allowed_hosts"] == ["ybj.huzhou.gov.cn", "10.0.0.5"]


def test_secret_key_from_env_and_required_in_production():
    assert _load(SECRET_KEY="s3cr3t-from-env")["secret_key"] == "s3cr3t-from-env"
    clean = {k: v for k, v in os.environ.items() if k not in _OURS}
    clean.update(DJANGO_SETTINGS_MODULE="config.settings", DJANGO_REQUIRE_SECRET_KEY="1")
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


def test_queue_name_from_env():
    assert _load()["queue"] == "portal"
    assert _load(CELERY_QUEUE="portal-test")["queue"] == "portal-test"
