from django.core.management.base import BaseCommand, CommandError

from settlement.analysis.aggregates import rebuild_year
from settlement.engine.services import SettlementError, check_year


class Command(BaseCommand):
    help = ("重新生成DRG运行分析的汇总：rebuild_drg_analysis --year YYYY [YYYY …]。"
            "DRG结算批次计算完成后会自动生成；此后导入或修改住院病例、调整审核政策的高低倍率后须重新生成")

    def add_arguments(self, parser):
        parser.add_argument("--year", required=True, nargs="+", help="年度（按出院日期），如2025；可写多个")

    def handle(self, year, **options):
        try:
            years = sorted({check_year(text) for text in year})
        except SettlementError as exc:
            raise CommandError(str(exc)) from None
        for value in years:
            seconds = rebuild_year(value)
            self.stdout.write(f"{value}年DRG运行分析汇总已重新生成，用时{seconds}秒")
