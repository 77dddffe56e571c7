"""The KPI pre-aggregates on the `seed_demo --size city` data: what keeping them costs, what reading them saves.

Prints, for one year: the full rebuild (`rebuild_year`, what `manage.py rebuild_kpi_aggregates`
runs), the refresh of one month (what every claims or cases import adds inside its landing
transaction), and the KPI selectors of the dashboard read raw (settlement.analysis.kpis.RAW) against read
from the aggregates, each with its figures compared. Every write is rolled back: the database is
left as it was. Figures are printed, never asserted.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_city SECRET_KEY=x PLAIN_HTTP=1 \\
        .venv/bin/python bench/kpi_aggregates_bench.py [--year 2025] [--month 6] [--skip-raw]
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from alliances import kpis  # noqa: E402
from alliances.models import Alliance, Region  # noqa: E402
from settlement.kpi_aggregates import selectors  # noqa: E402
from settlement.kpi_aggregates.services import _refresh_months, rebuild_year, refresh_months  # noqa: E402


class Undo(Exception):
    pass


def timed(label, work):
    started = time.monotonic()
    result = work()
    print(f"{(time.monotonic() - started) * 1000:>10.0f} ms  {label}")
    return result


def rolled_back(work):
    try:
        with transaction.atomic():
            work()
            raise Undo
    except Undo:
        pass


def dashboard_figures(year, source):
    counties = Region.objects.filter(parent__isnull=False)
    alliances = Alliance.objects.all()
    return (
        {pk: (u.values, u.inputs) for pk, u in kpis.county_kpis(year, counties, source).items()},
        {pk: (u.values, u.inputs) for pk, u in kpis.alliance_kpis(year, alliances, source).items()},
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--month", type=int, default=6)
    parser.add_argument("--skip-raw", action="store_true", help="skip the raw KPI computation (about a minute)")
    args = parser.parse_args()
    timed(f"rebuild_year({args.year}), rolled back", lambda: rolled_back(lambda: rebuild_year(args.year)))
    def unstaged():
        with connection.cursor() as cursor:
            _refresh_months(cursor, args.year, [args.month], staged=False)

    # In turns, so neither is always the one that finds the month in the cache.
    for _ in range(2):
        timed(f"refresh_months({args.year}, [{args.month}]) (one import's share: the month read once), rolled back",
              lambda: rolled_back(lambda: refresh_months(args.year, [args.month])))
        timed(f"the same month, each statement reading the tables (as before), rolled back",
              lambda: rolled_back(unstaged))
    aggregated = timed("county + alliance KPIs from the aggregates", lambda: dashboard_figures(args.year, selectors))
    if not args.skip_raw:
        raw = timed("county + alliance KPIs from the raw rows", lambda: dashboard_figures(args.year, kpis.RAW))
        print("figures equal:", raw == aggregated, "" if raw == aggregated else "(aggregates stale? rebuild the year)")


if __name__ == "__main__":
    main()
