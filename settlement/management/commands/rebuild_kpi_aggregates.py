from django.core.management.base import BaseCommand, CommandError

from settlement.kpi_aggregates.services import rebuild_year

MIN_YEAR, MAX_YEAR = 2000, 2100


class Command(BaseCommand):
    help = ("重新生成指标看板的月度汇总：rebuild_kpi_aggregates --year YYYY [YYYY …]。"
            "导入门诊结算或住院病例后会自动更新所涉月份；签约、医共体成员、默认医共体或参保人变化后须重新生成受影响的年度"
            "（看板同时读取上一年度，用于增长率）")

    def add_arguments(self, parser):
        parser.add_argument("--year", required=True, nargs="+", help="年度，如2025；可写多个")

    def handle(self, year, **options):
        years = []
        for text in year:
            try:
                value = int(text)
            except ValueError:
                raise CommandError(f"年份“{text}”无效：应为{MIN_YEAR}至{MAX_YEAR}之间的整数") from None
            if not MIN_YEAR <= value <= MAX_YEAR:
                raise CommandError(f"年份“{text}”无效：应为{MIN_YEAR}至{MAX_YEAR}之间的整数")
            years.append(value)
        for value in sorted(set(years)):
            seconds = rebuild_year(value)
            self.stdout.write(f"{value}年指标汇总已重新生成，用时{seconds}秒")
