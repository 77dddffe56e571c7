"""DRG operating analysis (SPEC §10) at city scale: the drg_report table and the 运行分析 page's one
statement, on the cases of bench/drg_bench.py (~500,000 DRG cases, ~1,000 institutions).

Uses drg_bench's generator on a database whose name contains "bench" (its inpatient tables are
emptied), then prints, beside drg_bench's reference GROUP BY, the time of
  - the institution table of drg_report (sets institution + pool, whole city);
  - the page's figures for one pool (all six aggregation levels, pages.page) as a city-wide user,
    computed live;
  - the rebuild of the year's pre-aggregates (analysis.aggregates.rebuild_year), and the same page's
    figures read from them (what the page does once a DRG run has computed).
Figures are printed, never asserted; the budget of issue 13 is 300 ms per page at p95.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_hf_bench SECRET_KEY=x PLAIN_HTTP=1 \
        .venv/bin/python bench/drg_analysis_bench.py [--cases N] [--repeat N]
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import drg_bench  # noqa: E402  (sets up Django)
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if connection.vendor != "postgresql" or "bench" not in connection.settings_dict["NAME"]:
        sys.exit("DATABASE_URL must name a PostgreSQL database whose name contains 'bench' (its tables are emptied)")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM settlement_inpatientcase")
        existing = cur.fetchone()[0]
    if existing != args.cases:
        drg_bench.generate(args.cases)

    from settlement.analysis import aggregates, drg, pages
    from settlement.analysis.models import DrgAnalysisYear
    from settlement.analysis.reports import institution_rows

    year = drg_bench.YEAR
    drg_bench.reference()
    ref_best, ref_median, _ = drg_bench.timed(drg_bench.reference, args.repeat + 2)
    table_best, table_median, rows = drg_bench.timed(lambda: institution_rows(year), args.repeat)
    pools = drg.pool_codes(year)
    pool = max(pools, key=lambda code: code.endswith("二级及以上"))

    class City:  # what restrict() and scope_for() need from a city-wide user
        is_authenticated = is_active = is_superuser = True
        _portal_scope = None

    user = City()
    DrgAnalysisYear.objects.filter(year=year).delete()  # live first
    page_best, page_median, figures = drg_bench.timed(lambda: pages.page(year, pool, user), args.repeat)
    rebuild_best, rebuild_median, _ = drg_bench.timed(lambda: aggregates.rebuild_year(year), 1)
    fast_best, fast_median, fast = drg_bench.timed(lambda: pages.page(year, pool, user), args.repeat + 2)
    assert fast["aggregated"]
    print(f"reference GROUP BY institution: best {ref_best * 1000:.0f} ms, median {ref_median * 1000:.0f} ms")
    print(f"drg_report table ({len(rows)} institutions): best {table_best * 1000:.0f} ms, median {table_median * 1000:.0f} ms")
    print(f"page figures of pool {pool} ({len(figures['rows'])} rows, {len(figures['groups'])} groups): "
          f"best {page_best * 1000:.0f} ms, median {page_median * 1000:.0f} ms (live)")
    print(f"rebuild of the pre-aggregates: {rebuild_best * 1000:.0f} ms")
    print(f"page figures of pool {pool} from the pre-aggregates: best {fast_best * 1000:.0f} ms, "
          f"median {fast_median * 1000:.0f} ms")
    print("load average (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
