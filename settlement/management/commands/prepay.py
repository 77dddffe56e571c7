from django.core.management.base import BaseCommand, CommandError

from settlement.engine.services import SettlementError, run_prepayment
from settlement.models import Scheme


def summary_line(scheme, year, month, summary):
    """One Chinese line describing what run_prepayment did (shared with the admin page)."""
    label = dict(Scheme.choices).get(scheme, scheme)
    line = (f"{year}年{month}月{label}月度预拨：新增{summary['created']}笔，更新{summary['updated']}笔，"
            f"未变{summary['unchanged']}笔")
    if summary["skipped"]:
        line += f"；以下单位本月已有导入的拨付记录，未重复预拨：{'、'.join(summary['skipped'])}"
    if not (summary["created"] or summary["updated"] or summary["unchanged"] or summary["skipped"]):
        line += "（本方案本月无需预拨）"
    return line


class Command(BaseCommand):
    help = "执行月度预拨：prepay <scheme> --year YYYY --month M [--region CODE]（重复执行不会重复拨付）"

    def add_arguments(self, parser):
        parser.add_argument("scheme", help="支付方案：capitation、special_outpatient、family_doctor、alliance_budget、drg、bed_day、disease")
        parser.add_argument("--year", required=True, help="年度，如2025")
        parser.add_argument("--month", required=True, help="月份，1至12")
        parser.add_argument("--region", help="县区区划代码；不填为全市")

    def handle(self, scheme, year, month, region=None, **options):
        try:
            summary = run_prepayment(scheme, year, month, region_code=region)
        except SettlementError as exc:
            raise CommandError(str(exc)) from None
        except ValueError as exc:
            # A scheme's input problem (e.g. a DRG pool without budget): its message is Chinese already.
            raise CommandError(f"预拨失败：{exc}") from None
        self.stdout.write(summary_line(scheme, year, month, summary))
