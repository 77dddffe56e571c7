from django.core.management.base import BaseCommand, CommandError

from settlement.audit.export import export_findings
from settlement.audit.selectors import findings
from settlement.audit.services import AuditError, check_rules
from settlement.engine.export import export_format
from settlement.engine.services import check_region, check_year


class Command(BaseCommand):
    help = "导出审核疑点（SPEC §5、§9）：每个疑点一行，xlsx 或 csv"

    def add_arguments(self, parser):
        parser.add_argument("--year", required=True, help="审核年度")
        parser.add_argument("--rule", action="append", dest="rules", help="规则编码，可重复；不填为全部规则")
        parser.add_argument("--region", help="县区区划代码；不填为全市")
        parser.add_argument("--output", required=True, help="输出文件（.xlsx 或 .csv）")

    def handle(self, year, output, rules=None, region=None, **options):
        try:
            year = check_year(year)
            codes = [rule.code for rule in check_rules(rules)] if rules else None
            region_obj = check_region(region)
            export_format(output)
        except (AuditError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        try:
            count = export_findings(findings(year, codes, region_obj), output)
        except OSError as exc:
            raise CommandError(f"无法写入输出文件“{output}”：{exc.strerror or exc}") from None
        self.stdout.write(f"已导出{year}年度审核疑点{count}条 → {output}")
