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
    "https": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE, settings.SECURE_SSL_REDIRECT,
              settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_INCLUDE_SUBDOMAINS],
    "proxy_header": settings.SECURE_PROXY_SSL_HEADER,
    "axes": [settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME.total_seconds()],
}))
"""

_OURS = {
    "DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_QUEUE", "DEBUG", "ALLOWED_HOSTS",
    "SECRET_KEY", "SECRET_KEY_FILE", "CSRF_TRUSTED_ORIGINS", "DB_CONN_MAX_AGE",
    "PLAIN_HTTP", "BEHIND_PROXY", "SESSION_COOKIE_AGE", "AXES_FAILURE_LIMIT", "AXES_COOLOFF_MINUTES",
    "EMBEDDED_DB_PORT", "EMBEDDED_DB_DIR",
}


# Long and varied enough for `check --deploy` (security.W009).
PRODUCTION_KEY = "k3y-for-the-settings-tests-only/8fJq2LmZ7xRvT1nWcY5bHd0sGpE4uAi9oKeN6"


def _env(**env):
    clean = {k: v for k, v in os.environ.items() if k not in _OURS}
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings"
    clean.update(env)
    return clean


def _load(**env):
    env.setdefault("SECRET_KEY", PRODUCTION_KEY)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _manage(*args, **env):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=120,
    )


def test_nothing_set_means_embedded_postgresql_and_tasks_in_process():
    loaded = _load()
    # Django's PostgreSQL backend with a hint when the embedded server is down (config/embedded_db)
    assert loaded["engine"] == "config.embedded_db"
    assert (loaded["name"], loaded["host"], loaded["port"]) == ("portal", "127.0.0.1", 5433)
    assert loaded["settings_eager"] is True
    assert loaded["app_eager"] is True


def test_embedded_port_from_env_and_empty_database_url_means_embedded():
    loaded = _load(EMBEDDED_DB_PORT="5499", DATABASE_URL="")
    assert (loaded["engine"], loaded["host"], loaded["port"]) == ("config.embedded_db", "127.0.0.1", 5499)


def test_database_url_selects_postgresql():
    loaded = _load(DATABASE_URL="postgres://alice@db.example:6543/portal_x")
    assert loaded["engine"] == "django.db.backends.postgresql"
    assert (loaded["name"], loaded["host"], loaded["port"]) == ("portal_x", "db.example", 6543)


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


def test_secret_key_from_env():
    assert _load(SECRET_KEY="s3cr3t-from-env")["secret_key"] == "s3cr3t-from-env"


def test_secret_key_from_file(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text("s3cr3t-from-a-file\n")
    assert _load(SECRET_KEY="", SECRET_KEY_FILE=str(key_file))["secret_key"] == "s3cr3t-from-a-file"


def test_without_secret_key_django_refuses_to_start_unless_debug():
    result = _manage("check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "未设置 SECRET_KEY" in result.stderr and "SECRET_KEY_FILE" in result.stderr

    missing = _manage("check", SECRET_KEY_FILE="/nonexistent/secret_key")
    assert missing.returncode != 0 and "无法读取 SECRET_KEY_FILE" in missing.stderr

    # A developer's fresh clone still starts with DEBUG alone.
    assert _manage("check", DEBUG="1").returncode == 0


def test_documented_production_environment_passes_check_deploy():
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        SECRET_KEY=PRODUCTION_KEY, ALLOWED_HOSTS="ybj.huzhou.gov.cn",
        DATABASE_URL="postgres://portal:pw@db.example:5432/portal", CELERY_BROKER_URL="redis://redis.example:6379/0",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr


def test_https_only_by_default_and_plain_http_turns_it_off():
    assert _load()["https"] == [True, True, True, 31536000, True]
    assert _load(PLAIN_HTTP="1")["https"] == [False, False, False, 0, False]
    # DEBUG is a developer's runserver on http.
    assert _load(DEBUG="1")["https"] == [False, False, False, 0, False]


def test_proxy_header_only_when_behind_a_proxy():
    assert _load()["proxy_header"] is None
    assert _load(BEHIND_PROXY="1")["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_login_lockout_limit_and_cool_off_from_env():
    assert _load()["axes"] == [5, 15 * 60]
    assert _load(AXES_FAILURE_LIMIT="3", AXES_COOLOFF_MINUTES="30")["axes"] == [3, 30 * 60]


def test_queue_name_from_env():
    assert _load()["queue"] == "portal"
    assert _load(CELERY_QUEUE="portal-test")["queue"] == "portal-test"


LOGIN = "/admin/login/"


def _login(client, username, password, **extra):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, **extra)


def test_too_many_wrong_passwords_lock_that_user_from_that_address(client, make_user):
    from django.conf import settings

    victim, colleague = make_user("city"), make_user("auditor")
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert _login(client, victim.username, "wrong-password").status_code == 200  # the form again
    assert _login(client, victim.username, "wrong-password").status_code == 429

    refused = _login(client, victim.username, "pw-Test-2026")
    assert refused.status_code == 429
    page = refused.content.decode()
    assert f"由于密码连续输错{limit}次" in page
    assert f"账号“{victim.username}”在本机已被锁定{settings.AXES_COOLOFF_MINUTES}分钟" in page
    assert "请联系市医保局系统管理员" in page
    assert "Account locked" not in page and "too many" not in page
    assert "_auth_user_id" not in client.session

    # Someone else at the same desk, and the same user from another address, still log in.
    assert _login(client, colleague.username, "pw-Test-2026").status_code == 302
    other_desk = type(client)()
    assert _login(other_desk, victim.username, "pw-Test-2026", REMOTE_ADDR="10.20.30.40").status_code == 302


def test_a_successful_login_starts_the_count_again(client, make_user):
    from django.conf import settings

    user = make_user("city")
    for _ in range(2):
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            assert _login(client, user.username, "wrong-password").status_code == 200
        assert _login(client, user.username, "pw-Test-2026").status_code == 302
        client.logout()
