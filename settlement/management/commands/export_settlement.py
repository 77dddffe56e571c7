from django.core.management.base import BaseCommand, CommandError

from settlement.engine.export import export_format, export_run
from settlement.engine.services import SettlementError, check_scheme, check_year, latest_run


class Command(BaseCommand):
    help = "导出结算结果（SPEC §5）：每个结算单位一行，xlsx 或 csv"

    def add_arguments(self, parser):
        parser.add_argument("--year", required=True, help="结算年度")
        parser.add_argument("--scheme", required=True, help="支付方案")
        parser.add_argument("--region", help="县区区划代码；不填为全市")
        parser.add_argument("--output", required=True, help="输出文件（.xlsx 或 .csv）")

    def handle(self, year, scheme, output, region=None, **options):
        try:
            check_scheme(scheme)
            year = check_year(year)
            export_format(output)
            run = latest_run(scheme, year, region)
        except (SettlementError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        if run is None:
            where = f"区划{region}" if region else "全市"
            raise CommandError(f"没有{year}年度{scheme}（{where}）已计算的结算批次，请先运行 settle")
        try:
            count = export_run(run, output)
        except OSError as exc:
            raise CommandError(f"无法写入输出文件“{output}”：{exc.strerror or exc}") from None
        self.stdout.write(f"已导出{run}：{count}个单位 → {output}")
