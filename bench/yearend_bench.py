"""Year-end at city scale (issue 13): the seven schemes' `settle … --sync`, beside one GROUP BY scan.

For each scheme, in turn with the reference scan (so a change in the host's speed touches both):
the time of a whole run (`start_run(scheme, year, sync=True)`, the code `settle --sync` runs),
split into its gather (the scheme's set-based input query) and the rest (compute and persist of
every unit, finish). Two reference scans are timed before every run:
    year:  SELECT institution_id, sum(fund_paid) FROM settlement_outpatientclaim
           WHERE visit_date BETWEEN <1 January> AND <31 December> GROUP BY 1
    table: the same without the WHERE (every year the table holds)
The year's scan is the headline: a settlement reads one year, and the table may hold history years
besides (the city data: 2024 and 2025). Both are printed with the rows they read, and every ratio
against each. Targets: the seven together ≤ 10× the scan, no scheme alone > 3×, and not only in the
fastest run: each scheme's slowest run is printed beside its fastest. Figures are printed, never asserted.

`--save FILE` writes every figure of the runs' unit results (Q, A, S, parts, E, paid, amount, details,
warnings) after the runs; `--compare FILE` reads such a file and prints each unit whose figures differ,
so a change to a gather or to persistence can be shown to give the same results to the cent.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_city SECRET_KEY=x \
        .venv/bin/python bench/yearend_bench.py [--year 2025] [--scheme drg ...] [--repeat 1] \
        [--save before.json | --compare before.json]

"整次" is the fastest run of a scheme; the ratios of that line use the median of all the reference
scans of the bench.
"""
import argparse
import datetime
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

SCHEMES = ["capitation", "special_outpatient", "family_doctor", "alliance_budget", "drg", "bed_day", "disease"]
TABLE_SQL = "SELECT institution_id, sum(fund_paid) FROM settlement_outpatientclaim GROUP BY 1"
YEAR_SQL = ("SELECT institution_id, sum(fund_paid) FROM settlement_outpatientclaim"
            " WHERE visit_date BETWEEN %s AND %s GROUP BY 1")


def year_bounds(year):
    return [datetime.date(year, 1, 1), datetime.date(year, 12, 31)]


def reference_scans(year):
    """(seconds of the year's scan, seconds of the whole table's scan), timed one after the other."""
    times = []
    for sql, params in ((YEAR_SQL, year_bounds(year)), (TABLE_SQL, [])):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            cursor.fetchall()
        times.append(time.perf_counter() - started)
    return tuple(times)


def reference_rows(year):
    """(claims of the year, claims in the table): the rows each reference scan aggregates."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FILTER (WHERE visit_date BETWEEN %s AND %s), COUNT(*)"
                       " FROM settlement_outpatientclaim", year_bounds(year))
        return cursor.fetchone()


RESULT_FIGURES = ("unit_name", "quota", "actual", "surplus", "unit_part", "fund_part", "entitled", "paid", "amount",
                  "details", "warnings")


def figures(runs):
    """scheme → {unit code → its figures as JSON-safe values}, plus the run's own warnings."""
    snapshot = {}
    for scheme, run in runs.items():
        rows = run.results.order_by("unit_code").values_list("unit_code", *RESULT_FIGURES)
        units = {code: [str(v) if isinstance(v, Decimal) else v for v in values] for code, *values in rows}
        snapshot[scheme] = {"warnings": run.warnings, "units": units}
    return snapshot


def compare(before, after):
    differences = 0
    for scheme in after:
        old, new = before.get(scheme), after[scheme]
        if old is None:
            print(f"{scheme}: 对照文件中没有该方案")
            continue
        for code in sorted(set(old["units"]) | set(new["units"])):
            if old["units"].get(code) != new["units"].get(code):
                differences += 1
                print(f"{scheme} {code}：之前 {old['units'].get(code)}，之后 {new['units'].get(code)}")
        if old["warnings"] != new["warnings"]:
            differences += 1
            print(f"{scheme}：批次提示不同")
        print(f"{scheme}：{len(new['units'])} 个单位已对照")
    print("全部单位结果与对照文件一致" if not differences else f"共 {differences} 处不同")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--year", type=int, help="settlement year (default: the latest year with claims)")
    parser.add_argument("--scheme", action="append", choices=SCHEMES, help="only these schemes (repeatable)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scheme; the fastest is reported")
    parser.add_argument("--save", help="write every unit result figure of the runs to this JSON file")
    parser.add_argument("--compare", help="compare the runs' unit results with a file written by --save")
    args = parser.parse_args()

    from settlement.engine.base import get_rule
    from settlement.engine.models import RunStatus
    from settlement.engine.services import _context, _params, start_run

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(visit_date) FROM settlement_outpatientclaim")
        latest = cursor.fetchone()[0]
    if latest is None:
        sys.exit("数据库没有门诊结算记录：请先运行 seed_demo --size city")
    year = args.year or latest.year
    year_rows, table_rows = reference_rows(year)
    reference_scans(year)  # warm the cache once, as every settlement will find it

    rows, refs, runs = [], [], {}
    for scheme in args.scheme or SCHEMES:
        times = []
        for _ in range(args.repeat):
            refs.append(reference_scans(year))
            started = time.perf_counter()
            run = start_run(scheme, year, sync=True)
            whole = time.perf_counter() - started
            if run.status != RunStatus.COMPUTED:
                print(f"{scheme}: 结算失败：{run.failure_reason}")
                break
            started = time.perf_counter()
            get_rule(scheme).gather(_context(run), _params(run))
            gather = time.perf_counter() - started
            runs[scheme] = run
            times.append((whole, gather, run.units_total, whole / refs[-1][0]))
        if times:
            fastest, slowest = min(times), max(times)
            # The worst ratio of a run to the year's scan timed just before it: a burst of load on the
            # shared host slows both, where the median scan would make the burst look like the code's.
            worst = max(t[3] for t in times)
            rows.append((scheme, *fastest[:3], slowest[0], worst))
    year_ref = statistics.median(r[0] for r in refs)
    table_ref = statistics.median(r[1] for r in refs)
    print(f"年度 {year}；参照查询 {len(refs)} 次，取中位：")
    print(f"  年度扫描（WHERE visit_date 在 {year} 年内，GROUP BY 机构）{year_rows:,} 行，中位 {year_ref:.2f} 秒"
          f"（最快 {min(r[0] for r in refs):.2f}，最慢 {max(r[0] for r in refs):.2f}）")
    print(f"  全表扫描（不限年度，GROUP BY 机构）{table_rows:,} 行，中位 {table_ref:.2f} 秒"
          f"（最快 {min(r[1] for r in refs):.2f}，最慢 {max(r[1] for r in refs):.2f}）")
    print(f"{'方案':<20}{'单位':>6}{'整次 秒':>9}{'汇总 秒':>9}{'其余 秒':>9}{'×年度':>8}{'×全表':>8}"
          f"{'最慢 秒':>9}{'最慢×年度':>10}{'逐次最高×':>10}")
    for scheme, whole, gather, units, slowest, worst in rows:
        flag = "  ← 超过 3×" if max(whole / year_ref, worst) > 3 else ""
        print(f"{scheme:<20}{units:>6}{whole:>9.2f}{gather:>9.2f}{whole - gather:>9.2f}{whole / year_ref:>7.2f}×"
              f"{whole / table_ref:>7.2f}×{slowest:>9.2f}{slowest / year_ref:>9.2f}×{worst:>9.2f}×{flag}")
    print("（最慢×年度 = 最慢一次 ÷ 年度扫描中位；逐次最高× = 每次结算 ÷ 其前刚测的年度扫描，取各次最高）")
    total = sum(row[1] for row in rows)
    total_slowest = sum(row[4] for row in rows)
    print(f"合计（各方案最快一次）{total:.2f} 秒 = {total / year_ref:.2f}× 年度扫描 = {total / table_ref:.2f}× 全表扫描"
          f"（目标 ≤ 10× 年度扫描）")
    print(f"合计（各方案最慢一次）{total_slowest:.2f} 秒 = {total_slowest / year_ref:.2f}× 年度扫描"
          f" = {total_slowest / table_ref:.2f}× 全表扫描")
    print("系统负载（1/5/15 分钟）：" + " / ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.save:
        Path(args.save).write_text(json.dumps(figures(runs), ensure_ascii=False, sort_keys=True))
        print(f"单位结果已写入 {args.save}")
    if args.compare:
        compare(json.loads(Path(args.compare).read_text()), figures(runs))


if __name__ == "__main__":
    main()
