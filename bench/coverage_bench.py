"""alliance_budget A with SPEC §6.4 Coverage on the `seed_demo` data: time and the county identity.

Prints the time of the attributed A of every alliance (contracts/coverage.py joined to the year's
普通门诊 claims, one statement) beside the old county-wide sum it replaced
    SELECT person.county_id, sum(fund_paid) … GROUP BY 1
and, per county, Σ A over its alliances against the county's A (they must be equal: each resident
counts for exactly one alliance). Figures are printed, never asserted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python bench/coverage_bench.py
    options: --size city|small (seeded when the database has no claims)  --year YYYY  --repeat N
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

COUNTY_SQL = """SELECT p.county_id, SUM(c.fund_paid) FROM settlement_outpatientclaim c
                  JOIN contracts_insuredperson p ON p.id = c.person_id
                 WHERE c.visit_date BETWEEN %s AND %s AND c.visit_type = '普通门诊' AND p.insurance_type = '居民'
                 GROUP BY 1"""


def timed(call, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return result, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=["city", "small"])
    parser.add_argument("--year", type=int)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from alliances.models import Alliance
    from settlement.engine.schemes.alliance_budget import actual_by_alliance
    from settlement.models import OutpatientClaim

    if not OutpatientClaim.objects.exists():
        call_command("seed_demo", "--size", args.size)
    year = args.year or OutpatientClaim.objects.latest("visit_date").visit_date.year
    alliances = list(Alliance.objects.values_list("pk", "county_id", "county__name"))
    print(f"年度 {year}：门诊结算 {OutpatientClaim.objects.filter(visit_date__year=year).count():,} 条，医共体 {len(alliances)} 个")

    attributed, t_new = timed(lambda: actual_by_alliance(year, [pk for pk, _, _ in alliances]), args.repeat)

    def county_sums():
        with connection.cursor() as cursor:
            cursor.execute(COUNTY_SQL, [f"{year}-01-01", f"{year}-12-31"])
            return dict(cursor.fetchall())

    by_county, t_old = timed(county_sums, args.repeat)
    print(f"按覆盖归属的A（全部医共体，一条SQL）：{t_new:.3f} 秒；旧的按县区汇总：{t_old:.3f} 秒；比值 {t_new / t_old:.2f}")
    names = {county: name for _, county, name in alliances}
    for county in sorted(names):
        members = [pk for pk, c, _ in alliances if c == county]
        total = sum((attributed.get(pk) or 0 for pk in members), 0)
        print(f"  {names[county]}：{len(members)}个医共体 ΣA = {total}，县区A = {by_county.get(county) or 0}，"
              f"{'相等' if total == (by_county.get(county) or 0) else '不相等'}")


if __name__ == "__main__":
    main()
