"""应付统筹 for every claim and case of a seeded year (SPEC §6.8), beside GROUP BY scans of the claims.

Prints the time of `compute_expected(year)` — every claim and case figured, the differing ones
replacing the year's stored figures — and of each of its statements, beside two plain scans measured
in the same round:
    SELECT institution_id, count(*), sum(fund_paid) FROM settlement_outpatientclaim
    WHERE visit_date BETWEEN first AND last GROUP BY 1       -- the year's claims: the headline
and the same without the WHERE (the whole table, every year it holds), each repeated, with the median
ratio against each. The target is ≤ 4× the year's scan. Figures are printed, never asserted.

The demo's table has no deductible and no 年度限额 (its claims were paid that way), so its claims
never need ordering. `--deductibles` also times, inside a transaction rolled back afterwards, the
same year under a table whose 居民 二级/三级 outpatient rows carry a deductible (200/300 元) and
whose 基层 rows a 300 元 limit: those claims go through the running sums in (date, serial) order.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python bench/benefit_bench.py
    options: --size small|medium|city (seeded when the database has no claims)  --year YYYY  --repeat N
             --deductibles  --database NAME (run on a database whose name lacks "bench": it rewrites
             only the year's 应付统筹 figures, as the admin's 测算 does)
"""
import argparse
import collections
import contextlib
import os
import re
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

REFERENCE_SQL = "SELECT institution_id, count(*), sum(fund_paid) FROM settlement_outpatientclaim {where} GROUP BY 1"
YEAR_FILTER = "WHERE visit_date BETWEEN %s AND %s"


def reference_query(year=None):
    """The scan's rows: the year's claims (year given) or the whole table's."""
    with connection.cursor() as cursor:
        if year is None:
            cursor.execute(REFERENCE_SQL.format(where=""))
        else:
            cursor.execute(REFERENCE_SQL.format(where=YEAR_FILTER), [f"{year}-01-01", f"{year}-12-31"])
        return sum(n for _, n, _ in cursor.fetchall())


def timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


@contextlib.contextmanager
def statement_times():
    """Seconds per statement kind of what runs inside, for the breakdown printed after each round."""
    spent = collections.Counter()

    def wrapper(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            words = re.sub(r"_\d+_[0-9a-f]{8}\b", "", sql).split()  # a part's table without its session suffix
            spent[" ".join(words[:4] if words[:1] == ["CREATE"] else words[:3])] += time.perf_counter() - started

    with connection.execute_wrapper(wrapper):
        yield spent


def deductible_variant(year):
    """The year's table with deductibles and a limit (see the module's docstring), approved."""
    from settlement.benefits.models import BenefitRule
    from settlement.benefits.services import approve_table, revise_table

    revise_table(year)
    rows = BenefitRule.objects.filter(year=year, insurance_type="居民", care_type="门诊", disease_prefix="", visit_type="")
    rows.filter(level="二级").update(deductible=200)
    rows.filter(level="三级").update(deductible=300)
    rows.filter(level="基层").update(annual_limit=300)
    approve_table(year)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="medium", choices=["small", "medium", "city"])
    parser.add_argument("--year", type=int, help="the year (default: the latest year with claims)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--deductibles", action="store_true")
    parser.add_argument("--database", help="allow this database although its name lacks bench")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("benefit_bench 需要 PostgreSQL：请设置 DATABASE_URL")
    name = connection.settings_dict["NAME"]
    if "bench" not in name and args.database != name:
        sys.exit("benefit_bench 会重写应付统筹测算结果：数据库名须包含 bench，或以 --database 指明该库")
    call_command("migrate", verbosity=0)

    from settlement.models import InpatientCase, OutpatientClaim

    if not OutpatientClaim.objects.exists():
        call_command("seed_demo", "--size", args.size)
    year = args.year or OutpatientClaim.objects.latest("visit_date").visit_date.year
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    claims = OutpatientClaim.objects.filter(visit_date__year=year).count()
    cases = InpatientCase.objects.filter(discharge_date__year=year).count()
    print(f"年度 {year}：门诊结算 {claims:,} 笔，住院病例 {cases:,} 例")
    reference_query()  # warm the cache the same way for all
    print(f"并行：max_parallel_workers_per_gather = {setting('max_parallel_workers_per_gather')}，"
          f"shared_buffers = {setting('shared_buffers')}；负载 {os.getloadavg()[0]:.2f}")
    rounds(year, args.repeat, "演示待遇表（无起付、无限额）")
    if args.deductibles:
        from django.db import transaction

        with transaction.atomic():
            deductible_variant(year)
            rounds(year, args.repeat, "有起付和限额的待遇表（事务内，结束后回滚）")
            transaction.set_rollback(True)


def setting(name):
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return cursor.fetchone()[0]


def vacuum_figures():
    """Clear the stored figures' dead rows before a round, outside its time (not inside a transaction).

    Each computation deletes and rewrites the year's ~136 k rows. With autovacuum on (the default)
    they are vacuumed between computations; where it is off (as on the shared bench host), every
    round would otherwise insert past all earlier rounds' dead rows and index entries (5 rounds: the
    write 0.9 s → 2.7 s).
    """
    if connection.in_atomic_block:
        return
    from settlement.benefits.models import UnmatchedFigure, UnmatchedTotal

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM {UnmatchedFigure._meta.db_table}, {UnmatchedTotal._meta.db_table}")


def rounds(year, repeat, label):
    from settlement.benefits.services import compute_expected

    print(f"— {label}")
    ratios, whole_ratios = [], []
    for round_number in range(1, repeat + 1):
        vacuum_figures()
        year_scan, year_rows = timed(lambda: reference_query(year))
        whole_scan, whole_rows = timed(reference_query)
        with statement_times() as spent:
            compute, counts = timed(lambda: compute_expected(year))
        ratios.append(compute / year_scan)
        whole_ratios.append(compute / whole_scan)
        print(f"第{round_number}轮：应付统筹 {compute:.2f} 秒（门诊 {counts['claims']:,}、住院 {counts['cases']:,}、"
              f"不一致 {counts['differing']:,}）；负载 {os.getloadavg()[0]:.2f}")
        print(f"    本年度 GROUP BY 扫描 {year_scan:.2f} 秒（{year_rows:,} 行），倍数 {compute / year_scan:.2f}；"
              f"全表 GROUP BY 扫描 {whole_scan:.2f} 秒（{whole_rows:,} 行），倍数 {compute / whole_scan:.2f}")
        print("    " + "；".join(f"{kind} {seconds:.2f}" for kind, seconds in spent.most_common(8)))
    print(f"中位倍数：对本年度扫描 {statistics.median(ratios):.2f}（目标 ≤ 4）；"
          f"对全表扫描 {statistics.median(whole_ratios):.2f}")


if __name__ == "__main__":
    main()
