from django.core.management.base import BaseCommand, CommandError

from settlement.approval import Refused
from settlement.engine.export import export_format
from settlement.engine.simulation import FACTOR_NAMES, simulate_latest, totals
from settlement.engine.simulation_export import export_simulation
from settlement.management.cli import IntermixedCommandParser

SCHEMES = "capitation、special_outpatient、family_doctor、alliance_budget、drg、bed_day、disease"


def money(value):
    return f"{value:,.2f}".replace("-", "−")


class Command(BaseCommand):
    help = ("政策模拟（SPEC §5、§11）：simulate <scheme> --year YYYY [--region CODE] NAME=VALUE... --output <file>；"
            "以最新一版已计算（或已审核、已拨付）的结算批次为基准，按调整后的参数重算每个单位，不改变任何结算结果")

    def create_parser(self, prog_name, subcommand, **kwargs):
        # NAME=VALUE words may follow the options (SPEC §5), as for `policy set`.
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = IntermixedCommandParser
        return parser

    def add_arguments(self, parser):
        parser.add_argument("scheme", help=f"支付方案：{SCHEMES}")
        parser.add_argument("--year", required=True, help="结算年度，如2025")
        parser.add_argument("--region", help="县区区划代码；不填为全市")
        parser.add_argument("--output", required=True, help="输出文件（.xlsx 或 .csv）：每个单位一行，基准 / 模拟 / 差额")
        parser.add_argument(
            "assignments", nargs="*", metavar="NAME=VALUE",
            help=f"政策参数=取值（同 policy set），以及 {'、'.join(FACTOR_NAMES)}=系数",
        )

    def handle(self, scheme, year, output, region=None, assignments=(), **options):
        try:
            export_format(output)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            simulation = simulate_latest(scheme, year, region, list(assignments))
        except Refused as exc:
            raise CommandError(str(exc)) from None
        try:
            count = export_simulation(simulation, output)
        except OSError as exc:
            raise CommandError(f"无法写入输出文件“{output}”：{exc.strerror or exc}") from None
        summary = totals(simulation.units.all())
        outlay = summary["fund_outlay"]
        named = {**simulation.changes, **{f"{k}_factor": v for k, v in simulation.factors.items()}}
        changed = "，".join(f"{k}={v}" for k, v in named.items()) or "参数未调整"
        self.stdout.write(f"{simulation}（{changed}）：{count}个单位 → {output}")
        self.stdout.write(
            f"基金支出（Σ应得金额）基准 {money(outlay['base'])}，模拟 {money(outlay['simulated'])}，"
            f"差额 {money(outlay['difference'])}；增加{summary['gaining']}个单位，减少{summary['losing']}个，"
            f"不变{summary['unchanged']}个"
        )
        # The base run's own warnings were printed by `settle`; only what the simulation adds is news.
        known = set(simulation.base_run.warnings)
        new = [w for w in simulation.warnings if w not in known]
        for warning in new:
            self.stdout.write(f"提示：{warning}")
        if len(simulation.warnings) > len(new):
            self.stdout.write(f"另有{len(simulation.warnings) - len(new)}条提示与基准批次相同，未重复列出")
