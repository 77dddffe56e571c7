"""DRG settlement at city scale (SPEC §8: ~500,000 inpatient cases a year, ~1,000 institutions).

Generates the cases with COPY into the database named by DATABASE_URL (which must be a bench database:
its name has to contain "bench", because the inpatient tables are emptied), then prints the time to
compute every case's points and every pool's point value and institution outcome (gather + compute +
finish for all pools) beside one plain
    SELECT institution_id, count(*), sum(total_cost) FROM settlement_inpatientcase GROUP BY 1
The target is within 3× of that query.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_drg_bench .venv/bin/python bench/drg_bench.py
    options: --cases N (default 500000)  --regenerate  --repeat N (default 3)
"""
import argparse
import datetime
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from alliances.models import InstitutionLevel  # noqa: E402
from contracts.validators import build_resident_id  # noqa: E402
from settlement.engine.base import RunContext, get_rule  # noqa: E402

YEAR = 2025
CITY = "330500"
COUNTIES = ["330502", "330503", "330521", "330522", "330523"]
INSTITUTIONS = 1000
PERSONS = 300_000
GROUPS = 600
REFERENCE_SQL = "SELECT institution_id, count(*), sum(total_cost) FROM settlement_inpatientcase GROUP BY 1"


def generate(n_cases: int, seed: int = 20250101):
    rnd = random.Random(seed)
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE settlement_inpatientcase, settlement_drggroup, settlement_drgcoefficient, settlement_budget, "
            "settlement_diseasestandard, settlement_beddayquota, settlement_payment RESTART IDENTITY CASCADE",
        )
        cur.execute("DELETE FROM contracts_insuredperson")
        cur.execute("DELETE FROM contracts_disease")
        cur.execute("DELETE FROM alliances_institution")
        cur.execute("DELETE FROM alliances_region WHERE parent_id IS NOT NULL")
        cur.execute("DELETE FROM alliances_region")
        cur.execute("INSERT INTO alliances_region (code, name, parent_id) VALUES (%s, '湖州市', NULL) RETURNING id", [CITY])
        city_id = cur.fetchone()[0]
        county_ids = []
        for code in COUNTIES:
            cur.execute(
                "INSERT INTO alliances_region (code, name, parent_id) VALUES (%s, %s, %s) RETURNING id",
                [code, f"县区{code}", city_id],
            )
            county_ids.append(cur.fetchone()[0])

        levels = [InstitutionLevel.TERTIARY] * 30 + [InstitutionLevel.SECONDARY] * 170 + \
                 [InstitutionLevel.PRIMARY] * 300 + [InstitutionLevel.GRASSROOTS] * 500
        raw = cur.cursor
        with raw.copy("COPY alliances_institution (code, name, county_id, level, grassroots_kind, kind, is_public) "
                      "FROM STDIN") as copy:
            for n in range(INSTITUTIONS):
                county = n % len(COUNTIES)
                copy.write_row((f"H{COUNTIES[county]}{n + 1:05d}", f"医院{n + 1}", county_ids[county], levels[n], "",
                                "综合", True))
        cur.execute("SELECT id, level, county_id FROM alliances_institution ORDER BY id")
        institutions = cur.fetchall()
        # Big hospitals see most cases: weight by level.
        weight = {InstitutionLevel.TERTIARY: 60, InstitutionLevel.SECONDARY: 12, InstitutionLevel.PRIMARY: 1,
                  InstitutionLevel.GRASSROOTS: Decimal("0.3")}
        inst_weights = [float(weight[level]) for _, level, _ in institutions]

        with raw.copy("COPY contracts_insuredperson (id_number, name, birth_date, sex, insurance_type, county_id, status) "
                      "FROM STDIN") as copy:
            day0 = datetime.date(1940, 1, 1)
            for n in range(PERSONS):
                birth = day0 + datetime.timedelta(days=n // 500)
                sex = "M" if n % 2 else "F"
                county = n % len(COUNTIES)
                copy.write_row((build_resident_id(COUNTIES[county], birth, n % 500, sex), f"参保人{n}", birth, sex,
                                "居民" if n % 3 else "职工", county_ids[county], "参保"))
        cur.execute("SELECT min(id), max(id) FROM contracts_insuredperson")
        first_person, last_person = cur.fetchone()

        with raw.copy("COPY settlement_drggroup (year, code, name, base_points, average_cost, bed_day_points, "
                      "same_price, tcm_support) FROM STDIN") as copy:
            for g in range(GROUPS):
                base = Decimal(rnd.randint(2000, 3_000_000)) / 10000
                bed_day = Decimal("3.5000") if g % 100 == 0 else None
                copy.write_row((YEAR, f"G{g:03d}", f"病组{g}", base, (base * 100).quantize(Decimal("0.01")), bed_day,
                                g % 17 == 0, g % 23 == 0))
        with raw.copy("COPY settlement_drgcoefficient (year, institution_id, coefficient) FROM STDIN") as copy:
            for inst_id, level, _ in institutions:
                if inst_id % 5:  # a fifth have no coefficient: 1
                    copy.write_row((YEAR, inst_id, {"三级": "1.2000", "二级": "1.0500"}.get(level, "0.9000")))
        # Some per-disease standards and bed-day quotas so that precedence has work to do.
        cur.execute("INSERT INTO contracts_disease (code, name, category, main_operation) "
                    "SELECT 'P' || g, '病种' || g, '按病种付费', '' FROM generate_series(1, 20) g")
        cur.execute("INSERT INTO settlement_diseasestandard (year, disease_id, main_operation, level, amount) "
                    "SELECT %s, id, '', '二级', 5000 FROM contracts_disease", [YEAR])
        cur.execute("INSERT INTO settlement_beddayquota (year, level, category, amount) "
                    "SELECT %s, l, c, 300 FROM unnest(ARRAY['三级','二级','一级','基层']) l, "
                    "unnest(ARRAY['精神','康复','安宁疗护']) c", [YEAR])

        start = datetime.date(YEAR, 1, 1)
        batch = 50_000
        with raw.copy("COPY settlement_inpatientcase (institution_id, serial, person_id, admission_date, "
                      "discharge_date, principal_diagnosis, main_operation, drg_code, total_cost, fund_paid, "
                      "personal_paid, incomplete_stay, transferred, new_technology, bed_day_category) FROM STDIN") as copy:
            n = 0
            while n < n_cases:
                chosen = rnd.choices(institutions, weights=inst_weights, k=batch)
                for inst_id, level, _ in chosen:
                    if n >= n_cases:
                        break
                    person = rnd.randint(first_person, last_person)
                    admission = start + datetime.timedelta(days=rnd.randint(0, 364))
                    discharge = min(admission + datetime.timedelta(days=rnd.randint(0, 20)), datetime.date(YEAR, 12, 31))
                    group = rnd.randrange(GROUPS)
                    total = Decimal(rnd.randint(50_000, 5_000_000)) / 100
                    personal = (total * Decimal(rnd.randint(5, 45)) / 100).quantize(Decimal("0.01"))
                    kind = rnd.random()
                    diagnosis = f"P{rnd.randint(1, 20)}" if kind < 0.03 else "Z00.0"
                    bed_day = "精神" if 0.03 <= kind < 0.05 else ""
                    copy.write_row((inst_id, f"BA{n:07d}", person, admission, discharge, diagnosis, "",
                                    f"G{group:03d}", total, total - personal, personal, rnd.random() < 0.05, False,
                                    False, bed_day))
                    n += 1
                    if rnd.random() < 0.03 and n < n_cases:  # a readmission 0–14 days later, same group
                        again = discharge + datetime.timedelta(days=rnd.randint(0, 14))
                        if again.year == YEAR:
                            copy.write_row((inst_id, f"BA{n:07d}", person, again, again, "Z00.0", "", f"G{group:03d}",
                                            total, total - personal, personal, False, False, False, ""))
                            n += 1

        # One budget per pool: roughly the pool's fund spending.
        cur.execute("""
            INSERT INTO settlement_budget (year, scheme, unit_code, insurance_type, amount)
            SELECT %s, 'drg', r.code || '-' || CASE WHEN i.level IN ('三级', '二级') THEN '二级及以上' ELSE '一级及基层' END,
                   '', ROUND(SUM(c.fund_paid) * 0.97, 2)
              FROM settlement_inpatientcase c JOIN alliances_institution i ON i.id = c.institution_id
              JOIN alliances_region r ON r.id = i.county_id
             GROUP BY 2, 3""", [YEAR])
        cur.execute("ANALYZE")


def timed(fn, repeat):
    times = []
    result = None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return min(times), statistics.median(times), result


def settle_all():
    rule = get_rule("drg")
    ctx = RunContext("drg", YEAR)
    params = rule.params_class()
    inputs = rule.gather(ctx, params)
    outcomes = [rule.compute(unit, params, Decimal("0.00")) for unit in inputs.values()]
    return outcomes, rule.finish(ctx, params, outcomes)


def reference():
    with connection.cursor() as cur:
        cur.execute(REFERENCE_SQL)
        return cur.fetchall()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500_000)
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    settings = connection.settings_dict
    if connection.vendor != "postgresql" or "bench" not in settings["NAME"]:
        sys.exit("DATABASE_URL must name a PostgreSQL database whose name contains 'bench' (its tables are emptied)")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM settlement_inpatientcase")
        existing = cur.fetchone()[0]
    if args.regenerate or existing != args.cases:
        began = time.perf_counter()
        generate(args.cases)
        print(f"generated {args.cases:,} cases in {time.perf_counter() - began:.1f} s")

    with connection.cursor() as cur:
        cur.execute("SELECT count(*), count(*) FILTER (WHERE bed_day_category = '') FROM settlement_inpatientcase")
        total, not_bed_day = cur.fetchone()
    reference()  # warm the cache for both
    ref_best, ref_median, _ = timed(reference, args.repeat + 2)
    drg_best, drg_median, (outcomes, warnings) = timed(settle_all, args.repeat)
    pools = {o.details["pool_code"] for o in outcomes}
    drg_cases = sum(o.details["cases"] for o in outcomes)
    print(f"cases in table: {total:,} (DRG scheme: {drg_cases:,}); institutions settled: {len(outcomes)}; pools: {len(pools)}")
    print(f"reference GROUP BY institution: best {ref_best * 1000:.0f} ms, median {ref_median * 1000:.0f} ms")
    print(f"DRG points + point values (gather + compute + finish, all pools): "
          f"best {drg_best * 1000:.0f} ms, median {drg_median * 1000:.0f} ms")
    print(f"ratio (best/best): {drg_best / ref_best:.2f}×  (target ≤ 3×)")
    print("load average (1/5/15 min): " + " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (other processes inflate the ratio)")
    from settlement.engine.schemes import drg

    first, last = datetime.date(YEAR, 1, 1), datetime.date(YEAR, 12, 31)
    params = drg.DrgParams()
    rd_best, _, ids = timed(lambda: drg.readmitted_case_ids(first, last, params), args.repeat)
    pts_best, _, _ = timed(lambda: drg.institution_points(YEAR, first, last, params), args.repeat)
    print(f"  of which: readmission semi-join {rd_best * 1000:.0f} ms ({len(ids):,} earlier cases halved); "
          f"points statement incl. readmission {pts_best * 1000:.0f} ms; "
          f"budgets + Python compute + finish ≈ {max(0.0, drg_best - pts_best) * 1000:.0f} ms")
    print(f"finish() warnings: {len(warnings)}")
    for warning in warnings[:5]:
        print("  ", warning)


if __name__ == "__main__":
    main()
