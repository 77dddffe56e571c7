"""All audit rules over a year of `seed_demo` data, beside one GROUP BY scan of the claims table (issue 15).

Prints, for each rule, the time of its upsert statement (first run from no findings, then a re-run that
finds them all again), the time of the passes the rules share (run once per run, first and re-run
alike; counted in the totals), and each one's ratio to one plain
    SELECT institution_id, count(*), sum(fund_paid) FROM settlement_outpatientclaim
    WHERE visit_date in the year GROUP BY 1
measured in the same run. Target: the whole rule set ≤ 6× that scan; no rule alone > 2×.

Each repetition runs inside a transaction that is rolled back: the year's findings are deleted before
the first run and come back untouched, so the bench may point at a working or city copy. A rule's first
run includes the deferred foreign-key checks of the findings it inserts, fired where its own transaction
would commit (a rolled-back bench would otherwise never run them). The re-run fires none: in its own
transaction an update that keeps a row's keys queues no check, while here (the rows inserted by this
same transaction) PostgreSQL would queue them all. Only an empty
database (no claims) is seeded first with `seed_demo --size`, and only when its name contains "bench".

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_audit_bench SECRET_KEY=x PLAIN_HTTP=1 \\
        .venv/bin/python bench/audit_bench.py --size city
    options: --size small|city (default city)  --repeat N (default 3)  --year YYYY
"""
import argparse
import contextlib
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
from django.db import connection, transaction  # noqa: E402

from settlement.audit.models import Finding  # noqa: E402
from settlement.audit.rules import registered_rules  # noqa: E402
from settlement.audit.services import run_rule, shared_passes  # noqa: E402
from settlement.demo import default_year  # noqa: E402
from settlement.models import OutpatientClaim  # noqa: E402

REFERENCE_SQL = (
    "SELECT institution_id, count(*), sum(fund_paid) FROM settlement_outpatientclaim "
    "WHERE visit_date BETWEEN %s AND %s GROUP BY 1"
)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def committed(rule, year, prepared, checks):
    """run_rule, then (`checks`) the deferred constraint checks its commit would fire (all of the
    schema's are DEFERRABLE INITIALLY DEFERRED, which the second SET restores for the transaction)."""
    outcome = run_rule(rule, year, prepared=prepared)
    if checks:
        with connection.cursor() as cur:
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cur.execute("SET CONSTRAINTS ALL DEFERRED")
    return outcome


def reference(year):
    with connection.cursor() as cur:
        cur.execute(REFERENCE_SQL, [f"{year}-01-01", f"{year}-12-31"])
        cur.fetchall()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", default="city")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--year", type=int, default=None)
    args = parser.parse_args()
    year = args.year or default_year()
    if not OutpatientClaim.objects.exists():
        if "bench" not in connection.settings_dict["NAME"]:
            sys.exit("空数据库只在名称含 bench 时才生成演示数据")
        call_command("migrate", verbosity=0)
        print(f"seeding seed_demo --size {args.size} --year {year} …", flush=True)
        call_command("seed_demo", size=args.size, year=year)
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    claims = OutpatientClaim.objects.filter(visit_date__year=year).count()
    print(f"year {year}: {claims} outpatient claims")
    rules = registered_rules()
    shared = "passes"
    scans = []
    first, again = ({code: [] for code in (shared, *rules)} for _ in range(2))
    counts = {}
    for _ in range(args.repeat):
        scans.append(timed(lambda: reference(year))[0])
        with transaction.atomic():
            Finding.objects.filter(year=year).delete()
            for times, checks in ((first, True), (again, False)):
                with contextlib.ExitStack() as stack:
                    seconds, prepared = timed(lambda: stack.enter_context(shared_passes(rules.values(), year)))
                    times[shared].append(seconds)
                    for code, rule in rules.items():
                        seconds, outcome = timed(lambda rule=rule: committed(rule, year, prepared, checks))
                        times[code].append(seconds)
                        counts[code] = outcome.produced
            transaction.set_rollback(True)
    counts[shared] = 0
    scan = statistics.median(scans)
    print(f"reference GROUP BY scan: {scan:.3f} s (median of {args.repeat})")
    print(f"{'rule':6} {'findings':>9} {'first s':>8} {'×scan':>6} {'re-run s':>9} {'×scan':>6}")
    for code in first:
        f, a = statistics.median(first[code]), statistics.median(again[code])
        print(f"{code:6} {counts[code]:9d} {f:8.3f} {f / scan:6.2f} {a:9.3f} {a / scan:6.2f}")
    total_first = sum(statistics.median(v) for v in first.values())
    total_again = sum(statistics.median(v) for v in again.values())
    print(f"all rules: first {total_first:.3f} s = {total_first / scan:.2f}× scan; "
          f"re-run {total_again:.3f} s = {total_again / scan:.2f}× scan (target ≤ 6×, each rule ≤ 2×)")


if __name__ == "__main__":
    main()
