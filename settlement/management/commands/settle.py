from django.core.management.base import BaseCommand, CommandError

from settlement.engine.models import RunStatus
from settlement.engine.services import SettlementError, start_run


class Command(BaseCommand):
    help = "结算一个支付方案的年度（SPEC §5）：settle <scheme> --year YYYY [--region CODE] [--sync]"

    def add_arguments(self, parser):
        parser.add_argument("scheme", help="支付方案：capitation、special_outpatient、family_doctor、alliance_budget、drg、bed_day、disease")
        parser.add_argument("--year", required=True, help="结算年度，如2025")
        parser.add_argument("--region", help="县区区划代码；不填为全市")
        parser.add_argument("--sync", action="store_true", help="在本进程内计算完成后再返回（不经后台任务）")

    def handle(self, scheme, year, region=None, sync=False, **options):
        try:
            run = start_run(scheme, year, region_code=region, sync=sync)
        except SettlementError as exc:
            raise CommandError(str(exc)) from None
        if run.status == RunStatus.FAILED:
            raise CommandError(f"{run}计算失败：{run.failure_reason}")
        if run.status == RunStatus.COMPUTED:
            self.stdout.write(f"{run}已计算：{run.units_total}个单位")
            for warning in run.warnings:
                self.stdout.write(f"提示：{warning}")
        else:
            self.stdout.write(f"{run}已提交后台计算（批次号{run.pk}），可在管理后台查看进度")
