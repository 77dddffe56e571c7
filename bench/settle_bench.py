"""Capitation settlement at city scale (SPEC §8), on the `seed_demo --size city` data.

Prints the time of a whole `capitation` run (policy resolution, set-based gather, one compute and
one upsert per alliance, finish — in-process, the same code the unit tasks run) beside the time of
one plain
    SELECT institution_id, sum(fund_paid) FROM settlement_outpatientclaim GROUP BY 1
The target is within 3× of that query. Figures are printed, never asserted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python bench/settle_bench.py
    options: --size city|small (seeded when the database has no claims)  --skip-seed  --year YYYY  --repeat N
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

REFERENCE_SQL = "SELECT institution_id, sum(fund_paid) FROM settlement_outpatientclaim GROUP BY 1"


def reference_query():
    with connection.cursor() as cursor:
        cursor.execute(REFERENCE_SQL)
        return len(cursor.fetchall())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="city", choices=["city", "small"])
    parser.add_argument("--skip-seed", action="store_true", help="use the data already in the database")
    parser.add_argument("--year", type=int, help="settlement year (default: the latest year with claims)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    if connection.vendor != "postgresql":
        sys.exit("settle_bench 需要 PostgreSQL：请设置 DATABASE_URL")
    call_command("migrate", verbosity=0)

    from settlement.engine.models import PaymentPolicy, RunStatus, UnitResult
    from settlement.engine.presets import load_preset
    from settlement.engine.schemes.capitation import gather_capitation
    from settlement.engine.services import resolve_policy, start_run
    from settlement.engine.base import RunContext
    from settlement.models import ApprovalStatus, OutpatientClaim

    if not args.skip_seed and not OutpatientClaim.objects.exists():
        print(f"数据库没有门诊结算记录，先生成演示数据（seed_demo --size {args.size}）……", flush=True)
        started = time.perf_counter()
        call_command("seed_demo", size=args.size)
        print(f"生成用时 {time.perf_counter() - started:.1f} 秒", flush=True)

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(visit_date) FROM settlement_outpatientclaim")
        latest = cursor.fetchone()[0]
        cursor.execute("ANALYZE")
    if latest is None:
        sys.exit("数据库没有门诊结算记录：请去掉 --skip-seed 或先运行 seed_demo")
    year = args.year or latest.year

    if not PaymentPolicy.objects.filter(scheme="capitation", year=year, status=ApprovalStatus.APPROVED).exists():
        for line in load_preset("湖州", year, approve=True):
            print(f"政策：{line}")
    params = resolve_policy("capitation", year).typed_parameters()

    counts = {
        "门诊结算记录": OutpatientClaim.objects.filter(visit_date__year=year).count(),
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM contracts_contract WHERE verified_on IS NOT NULL")
        counts["已核实签约"] = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM contracts_diseaseregistration")
        counts["慢特病备案"] = cursor.fetchone()[0]
    print("数据量：" + "，".join(f"{k} {v:,}" for k, v in counts.items()))

    reference_query()  # warm the cache once, as the settlement will find it
    ctx = RunContext("capitation", year)

    def settle():
        run = start_run("capitation", year, sync=True)
        if run.status != RunStatus.COMPUTED:
            sys.exit(f"结算失败：{run.failure_reason}")
        return run

    # The three are measured in turns, so that a change in the host's speed during the bench (seen
    # here: 30% within minutes) touches them alike; each round's own ratio is printed as well.
    steps = {"ref": reference_query, "gather": lambda: gather_capitation(ctx, params), "run": settle}
    times, last = {key: [] for key in steps}, {}
    for _ in range(args.repeat):
        for key, step in steps.items():
            started = time.perf_counter()
            last[key] = step()
            times[key].append(time.perf_counter() - started)
    groups, inputs, run = last["ref"], last["gather"], last["run"]
    ref_min, gather_min, run_min = (min(times[k]) for k in ("ref", "gather", "run"))
    median = statistics.median
    print(f"参照查询（{groups:,} 个机构）：最快 {ref_min:.3f} 秒，中位 {median(times['ref']):.3f} 秒")
    print(f"汇总（gather，{len(inputs)} 个医共体）：最快 {gather_min:.3f} 秒，中位 {median(times['gather']):.3f} 秒")
    print(f"整次结算（{run.units_total} 个医共体，含写入结果）：最快 {run_min:.3f} 秒，中位 {median(times['run']):.3f} 秒")
    print(f"倍数：整次结算 / 参照查询 = {run_min / ref_min:.2f}×（目标 ≤ 3×）；汇总 / 参照查询 = {gather_min / ref_min:.2f}×")
    rounds = [r / q for r, q in zip(times["run"], times["ref"])]
    print("各轮倍数（同一轮内整次结算 / 参照查询）：" + "、".join(f"{x:.2f}×" for x in rounds)
          + f"，中位 {median(rounds):.2f}×")
    print("系统负载（1/5/15 分钟）：" + " / ".join(f"{x:.2f}" for x in os.getloadavg()) + "（其他进程争用 CPU 时倍数偏高）")

    totals = UnitResult.objects.filter(run=run)
    quota = sum(r.quota for r in totals)
    actual = sum(r.actual for r in totals)
    print(f"{year}年全市：预算额度 {quota:,.2f} 元，实际支出 {actual:,.2f} 元，结余超支 {quota - actual:,.2f} 元")
    if run.warnings:
        print(f"提示 {len(run.warnings)} 条，例如：{run.warnings[0]}")


if __name__ == "__main__":
    main()
