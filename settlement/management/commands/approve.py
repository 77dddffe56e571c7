from django.core.management.base import BaseCommand, CommandError

from settlement.approval import Refused
from settlement.engine.policy_services import approve_year, check_approvable, find_user
from settlement.engine.services import check_year


class Command(BaseCommand):
    help = ("审批（SPEC §5）：approve <policies|capitation_standards|special_standards|benefit_rules> "
            "--year YYYY [--region CODE] --user NAME，审批该年度的全部草稿")

    def add_arguments(self, parser):
        parser.add_argument("kind", help="policies（支付政策）、capitation_standards（门诊人头标准）、"
                                         "special_standards（二类门特人头标准）、benefit_rules（待遇政策表）")
        parser.add_argument("--year", required=True, help="年度，如2025")
        parser.add_argument("--region", help="县区区划代码，仅用于 policies；不填为全市")
        parser.add_argument("--user", required=True, help="审批人用户名（市医保局）")

    def handle(self, kind, year, user, region=None, **options):
        try:
            label = check_approvable(kind)
            year = check_year(year)
            count = approve_year(kind, year, region, find_user(user))
        except Refused as exc:
            raise CommandError(str(exc)) from None
        where = f"区划{region}" if region else "全市"
        if count:
            self.stdout.write(f"已审批{year}年度（{where}）{label}{count}项，审批人：{user}")
        else:
            self.stdout.write(f"{year}年度（{where}）没有待审批的{label}")
