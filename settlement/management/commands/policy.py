from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from settlement.approval import Refused
from settlement.engine.policy_services import (
    describe, display_value, find_policy, find_user, load_policies, set_parameters,
)
from settlement.management.cli import IntermixedCommandParser

SCHEMES = "capitation、special_outpatient、family_doctor、alliance_budget、drg、bed_day、disease"


class Command(BaseCommand):
    help = ("支付政策（SPEC §5）：policy load --preset … --year YYYY [--region CODE] [--approve --user NAME]；"
            "policy set <scheme> --year YYYY [--region CODE] NAME=VALUE...；policy show <scheme> --year YYYY [--region CODE]")

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="load|set|show",
                                        parser_class=IntermixedCommandParser)
        load = actions.add_parser("load", help="加载城市政策预设（可同时审批）")
        load.add_argument("--preset", required=True, help="huzhou（湖州）、panzhihua（攀枝花）、kaifeng（开封）或 defaults（各方案默认参数）")
        load.add_argument("--year", required=True, help="政策年度，如2025")
        load.add_argument("--region", help="县区区划代码；不填为全市")
        load.add_argument("--approve", action="store_true", help="加载后直接审批（需 --user 指定市医保局用户）")
        load.add_argument("--user", help="审批人用户名（市医保局）")

        change = actions.add_parser("set", help="设置支付政策参数（无政策时按默认参数新建草稿）")
        change.add_argument("scheme", help=f"支付方案：{SCHEMES}")
        change.add_argument("--year", required=True, help="政策年度，如2025")
        change.add_argument("--region", help="县区区划代码；不填为全市")
        change.add_argument("assignments", nargs="*", metavar="NAME=VALUE", help="参数名=取值；列表参数用逗号分隔")

        show = actions.add_parser("show", help="显示支付政策的全部参数及其来源")
        show.add_argument("scheme", help=f"支付方案：{SCHEMES}")
        show.add_argument("--year", required=True, help="政策年度，如2025")
        show.add_argument("--region", help="县区区划代码；不填为全市")

    def handle(self, action, **options):
        try:
            getattr(self, f"_{action}")(**options)
        except Refused as exc:
            raise CommandError(str(exc)) from None

    def _load(self, preset, year, region=None, approve=False, user=None, **options):
        if approve and not user:
            raise CommandError("--approve 需要用 --user 指定审批人（市医保局用户）")
        acting = find_user(user) if user else None
        for line in load_policies(preset, year, region, user=acting, approve=approve):
            self.stdout.write(line)

    def _set(self, scheme, year, region=None, assignments=(), **options):
        policy = set_parameters(scheme, year, region, assignments,
                                reason=f"命令行 policy set {' '.join(assignments)}")
        names = [word.partition("=")[0].strip() for word in assignments]
        values = "，".join(f"{name}={display_value(policy.parameters[name])}" for name in names)
        self.stdout.write(f"{policy}：已设置 {values}（{policy.get_status_display()}，审批后生效）")

    def _show(self, scheme, year, region=None, **options):
        policy = find_policy(scheme, year, region)
        self.stdout.write(str(policy))
        status = f"状态：{policy.get_status_display()}"
        if policy.approved_at is not None:
            who = policy.approved_by.get_username() if policy.approved_by_id else "系统"
            when = timezone.localtime(policy.approved_at).strftime("%Y-%m-%d %H:%M")
            status += f"；审批人：{who}；审批时间：{when}"
        else:
            status += "；审批人：—（待审批）"
        self.stdout.write(status)
        self.stdout.write("\t".join(["参数", "名称", "取值", "来源"]))
        for row in describe(policy):
            self.stdout.write("\t".join([row.name, row.label, row.value, row.source_text]))
