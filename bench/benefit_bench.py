"""应付统筹 for every claim and case of a seeded year (SPEC §6.8), beside one GROUP BY scan of the claims.

Prints the time of `compute_expected(year)` — the DELETE of the year's previous figures and the two
set-based INSERT … SELECT statements (outpatient with running sums per person-year and rule,
inpatient with referral joins and running sums per person-year) — beside one plain
    SELECT institution_id, sum(fund_paid) FROM settlement_outpatientclaim GROUP BY 1
in the same run, each repeated, with the median ratio. The target is ≤ 4× that scan. Figures are
printed, never asserted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python bench/benefit_bench.py
    options: --size small|medium|city (seeded when the database has no claims)  --year YYYY  --repeat N
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


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="medium", choices=["small", "medium", "city"])
    parser.add_argument("--year", type=int, help="the year (default: the latest year with claims)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("benefit_bench 需要 PostgreSQL：请设置 DATABASE_URL")
    if "bench" not in connection.settings_dict["NAME"]:
        sys.exit("benefit_bench 会重写应付统筹测算结果：数据库名须包含 bench")
    call_command("migrate", verbosity=0)

    from settlement.benefits.services import compute_expected
    from settlement.models import InpatientCase, OutpatientClaim

    if not OutpatientClaim.objects.exists():
        call_command("seed_demo", "--size", args.size)
    year = args.year or OutpatientClaim.objects.latest("visit_date").visit_date.year
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    claims = OutpatientClaim.objects.filter(visit_date__year=year).count()
    cases = InpatientCase.objects.filter(discharge_date__year=year).count()
    print(f"年度 {year}：门诊结算 {claims:,} 笔，住院病例 {cases:,} 例")
    reference_query()  # warm the cache the same way for both
    ratios = []
    for round_number in range(1, args.repeat + 1):
        scan, _ = timed(reference_query)
        compute, counts = timed(lambda: compute_expected(year))
        ratios.append(compute / scan)
        print(f"第{round_number}轮：应付统筹 {compute:.2f} 秒（门诊 {counts['claims']:,}、住院 {counts['cases']:,}、"
              f"不一致 {counts['differing']:,}）；GROUP BY 扫描 {scan:.2f} 秒；倍数 {compute / scan:.2f}")
    print(f"中位倍数 {statistics.median(ratios):.2f}（目标 ≤ 4）")


if __name__ == "__main__":
    main()
