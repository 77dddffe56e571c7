from django.core.management.base import BaseCommand, CommandError

from settlement.analysis.export import report_format, write_report
from settlement.analysis.reports import export_rows, institution_rows
from settlement.engine.services import SettlementError, check_region, check_year


class Command(BaseCommand):
    help = "导出DRG运行分析（SPEC §10）：每个医疗机构一行，xlsx 或 csv"

    def add_arguments(self, parser):
        parser.add_argument("--year", required=True, help="年度（按出院日期）")
        parser.add_argument("--region", help="县区或全市区划代码；不填为全市")
        parser.add_argument("--output", required=True, help="输出文件（.xlsx 或 .csv）")

    def handle(self, year, output, region=None, **options):
        try:
            year = check_year(year)
            report_format(output)
            check_region(region)
        except (SettlementError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        rows = institution_rows(year, region_code=region or None)
        if not rows:
            where = f"区划{region}" if region else "全市"
            raise CommandError(f"{where}没有{year}年度按DRG付费的住院病例，未生成报表")
        try:
            write_report(export_rows(rows), output)
        except OSError as exc:
            raise CommandError(f"无法写入输出文件“{output}”：{exc.strerror or exc}") from None
        self.stdout.write(f"已导出{year}年度DRG运行分析：{len(rows)}个机构 → {output}")
