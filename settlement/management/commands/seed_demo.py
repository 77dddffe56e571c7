import unicodedata

from django.core.management.base import BaseCommand, CommandError

from settlement.demo import SIZES, DemoError, default_year, seed_demo


def pad(text, width):
    """Left-justify to a terminal width where each Chinese character takes two columns."""
    shown = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text))
    return f"{text}{' ' * max(0, width - shown)}"


class Command(BaseCommand):
    help = "生成湖州式演示数据（确定性、可重复运行）：small 用于演示，city 用于压力测试（仅 PostgreSQL）"

    def add_arguments(self, parser):
        parser.add_argument("--size", choices=list(SIZES), default="small", help="数据规模（默认 small）")
        parser.add_argument("--year", type=int, default=None, help=f"演示年度（默认上一年：{default_year()}）")

    def handle(self, *args, size, year, **options):
        try:
            result = seed_demo(size=size, year=year, log=self.stdout.write)
        except DemoError as exc:
            raise CommandError(str(exc)) from None
        if not result.already_present:
            self.stdout.write("")
            self.stdout.write(f"{pad('数据表', 20)}{'行数':>10}")
            for label, count in result.counts.items():
                self.stdout.write(f"{pad(label, 20)}{count:>12,}")
            self.stdout.write(f"合计 {sum(result.counts.values()):,} 行，用时 {result.seconds:.1f} 秒（{result.year}年度）")
        self.stdout.write("")
        self.stdout.write("演示登录账号（用户名 / 密码 / 角色 / 范围）：")
        for username, password, role, scope in result.logins:
            self.stdout.write(f"  {pad(username, 15)}{pad(password, 15)}{pad(role, 14)}{scope}")
