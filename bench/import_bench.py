"""Import throughput and peak memory (SPEC §4, §8): prints figures, asserts nothing.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python bench/import_bench.py

Generates a 200,000-row outpatient_claims xlsx and a 1,000,000-row csv (with the persons and
institutions they reference), then imports them through the same code path as
`manage.py import_data` — full validation, scope, COPY of new keys (the staging upsert for stored
ones) and history rows — each in a child process whose own peak RSS (wait4 ru_maxrss) is reported.
Beside it, in the same run: stock django-import-export with a tuned ModelResource on the first
50,000 csv rows, a raw COPY of the whole csv into an unindexed table, and — the floor the import's
rate is read against — a COPY of the same rows, keys resolved, into a table with the claims table's
constraints, indexes and foreign keys.
Targets: xlsx ≥ 25,000 rows/s, csv ≥ 50,000 rows/s, peak memory < 500 MB for the 1,000,000-row csv.

With --city (a copy of `seed_demo --size city`, never portal_city itself) the claims table is not
emptied: the files are a monthly upload (every row in one month of the data's latest year, by
existing persons at existing institutions, serials BENCH…) landing beside the 10 million stored
claims, so the import pays for the city's index sizes and for refreshing that month's KPI
aggregates over the month's stored claims (printed apart: KPI刷新). Between cases the bench rows and
their history are deleted and the month refreshed again. The floor is then a COPY of the same rows
into the claims table itself, its key checks run, rolled back.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_city_copy .venv/bin/python bench/import_bench.py --city --skip-die
"""
import argparse
import csv
import datetime
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
OUT = ROOT / "bench" / "out"
HEADERS = ["结算流水号", "身份证号", "机构编码", "就诊日期", "门诊类型", "病种编码", "总费用", "统筹支付", "个人负担", "转诊"]
PERSONS = 100_000
INSTITUTIONS = 40
XLSX_ROWS = 200_000
CSV_ROWS = 1_000_000
DIE_ROWS = 50_000
CITY = "--city" in sys.argv  # read before django.setup() in the children too (they get the flag passed on)
SERIAL_PREFIX = "BENCH" if CITY else "MZ"


def ensure_database():
    import psycopg
    from dj_database_url import parse

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("请设置 DATABASE_URL 为 PostgreSQL 数据库，例如 postgres://postgres@127.0.0.1:5432/portal_bench")
    db = parse(url)
    admin = psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres",
                            password=db["PASSWORD"] or None, dbname="postgres", autocommit=True)
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]).fetchone():
        admin.execute(f'CREATE DATABASE "{db["NAME"]}"')
    admin.close()


def setup_master_data():
    """Regions, institutions and persons, loaded directly: they are the fixture, not the measurement."""
    import django

    django.setup()
    if CITY:
        return city_master_data()
    from django.core.management import call_command
    from django.db import connection

    from alliances.models import Institution, Region
    from contracts.validators import build_resident_id

    call_command("migrate", verbosity=0)
    city, _ = Region.objects.get_or_create(code="330500", defaults={"name": "湖州市"})
    county, _ = Region.objects.get_or_create(code="330502", defaults={"name": "吴兴区", "parent": city})
    codes = []
    for i in range(1, INSTITUTIONS + 1):
        code = f"H330502{i:05d}"
        Institution.objects.get_or_create(code=code, defaults={"name": f"基准医院{i}", "county": county, "level": "二级"})
        codes.append(code)
    ids = []
    day = datetime.date(1940, 1, 1)
    while len(ids) < PERSONS:
        for sequence in range(500):
            ids.append((build_resident_id("330502", day, sequence, "M" if sequence % 2 else "F"), day, "M" if sequence % 2 else "F"))
        day += datetime.timedelta(days=1)
    ids = ids[:PERSONS]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM contracts_insuredperson")
        if cursor.fetchone()[0] < PERSONS:
            cursor.execute("TRUNCATE contracts_insuredperson, contracts_historicalinsuredperson CASCADE")
            with cursor.cursor.copy(
                "COPY contracts_insuredperson (id_number, name, birth_date, sex, insurance_type, county_id, status) FROM STDIN"
            ) as copy:
                for number, birth, sex in ids:
                    copy.write_row((number, "参保人", birth, sex, "居民", county.pk, "参保"))
    return [number for number, _, _ in ids], codes


def city_master_data():
    """The city's own persons and institutions (the first PERSONS persons, INSTITUTIONS institutions
    of its first county), and the month the uploads fall in: June of the latest year with claims."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id_number FROM contracts_insuredperson ORDER BY id LIMIT %s", [PERSONS])
        ids = [number for (number,) in cursor.fetchall()]
        cursor.execute("SELECT code FROM alliances_institution WHERE code LIKE 'H330502%%' ORDER BY code LIMIT %s",
                       [INSTITUTIONS])
        codes = [code for (code,) in cursor.fetchall()]
        cursor.execute("SELECT EXTRACT(YEAR FROM MAX(visit_date))::int FROM settlement_outpatientclaim")
        year = cursor.fetchone()[0]
    if len(ids) < PERSONS or len(codes) < INSTITUTIONS or year is None:
        sys.exit("--city 需要 seed_demo --size city 的数据（参保人、吴兴区机构、门诊结算记录）")
    return ids, codes, year


def upload_days(year=None):
    if year is not None:  # a monthly upload: every day of June
        return [datetime.date(year, 6, day).isoformat() for day in range(1, 31)]
    start = datetime.date(2024, 1, 1)
    return [(start + datetime.timedelta(days=d)).isoformat() for d in range(366)]


def claim_rows(person_ids, codes, count, year=None):
    dates = upload_days(year)
    for i in range(count):
        cents = 1000 + (i * 37) % 90000
        fund = cents * 6 // 10
        yield [
            f"{SERIAL_PREFIX}{i:010d}", person_ids[(i * 7919) % len(person_ids)], codes[i % len(codes)],
            dates[i % len(dates)],
            "普通门诊", "", f"{cents // 100}.{cents % 100:02d}", f"{fund // 100}.{fund % 100:02d}",
            f"{(cents - fund) // 100}.{(cents - fund) % 100:02d}", "否" if i % 10 else "是",
        ]


def generate(person_ids, codes, year=None):
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"city{year}_" if year else ""
    csv_path, xlsx_path = OUT / f"claims_{tag}{CSV_ROWS}.csv", OUT / f"claims_{tag}{XLSX_ROWS}.xlsx"
    if not csv_path.exists():
        with open(csv_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADERS)
            writer.writerows(claim_rows(person_ids, codes, CSV_ROWS, year))
    if not xlsx_path.exists():
        from openpyxl import Workbook

        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("门诊结算记录")
        sheet.append(HEADERS)
        for row in claim_rows(person_ids, codes, XLSX_ROWS, year):
            sheet.append(row)
        workbook.save(xlsx_path)
    die_path = OUT / f"claims_{tag}{DIE_ROWS}.csv"
    if not die_path.exists():
        with open(csv_path, encoding="utf-8") as source, open(die_path, "w", encoding="utf-8") as target:
            for _ in range(DIE_ROWS + 1):
                target.write(source.readline())
    return xlsx_path, csv_path, die_path


def truncate_claims():
    from django.db import connection

    if CITY:
        return remove_bench_claims()
    with connection.cursor() as cursor:
        # CASCADE: the bench database's findings and benefit figures name claims; it keeps none of them.
        cursor.execute("TRUNCATE settlement_outpatientclaim, settlement_historicaloutpatientclaim CASCADE")


def remove_bench_claims():
    """The city as it was before the bench: its rows and their history gone, June's aggregates again."""
    from django.db import connection, transaction

    from settlement.kpi_aggregates.services import refresh_months

    pattern = f"{SERIAL_PREFIX}%"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT EXTRACT(YEAR FROM visit_date)::int, EXTRACT(MONTH FROM visit_date)::int "
                       "FROM settlement_historicaloutpatientclaim WHERE serial LIKE %s", [pattern])
        months = cursor.fetchall()
        cursor.execute("DELETE FROM settlement_historicaloutpatientclaim WHERE serial LIKE %s", [pattern])
        cursor.execute("DELETE FROM settlement_outpatientclaim WHERE serial LIKE %s", [pattern])
        for year, month in months:
            refresh_months(year, [month])


# --- measurements, each run in its own child process ------------------------------------------


class BackendCpu:
    """CPU seconds of the PostgreSQL backend that lands the rows, read from /proc (same machine).

    The landing connection lives in the lander's thread and closes with it, so its /proc entry is
    sampled every 0.1 s and the last reading kept: a lower bound, short by at most one interval.
    """

    def __init__(self):
        self.pids = set()
        self.last = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def watch(self):
        from settlement.imports import landing

        original = landing.OverlappedCopyLander._begin
        pids = self.pids

        def begin(lander, cursor):
            original(lander, cursor)
            cursor.execute("SELECT pg_backend_pid()")
            pids.add(cursor.fetchone()[0])

        landing.OverlappedCopyLander._begin = begin
        self.thread.start()
        return self

    def _sample(self):
        tick = os.sysconf("SC_CLK_TCK")
        while not self.stop.wait(0.1):
            for pid in list(self.pids):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.last[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime

    def seconds(self):
        self.stop.set()
        self.thread.join()
        return sum(self.last.values())


def measure_portal(path):
    from settlement.imports.services import import_file

    result = import_file("outpatient_claims", path)
    assert result.landed and result.bad_rows == 0, result.errors[:5]
    assert result.created + result.updated + result.unchanged == result.rows
    return result.rows


def measure_die(path):
    import tablib
    from import_export import fields, resources, widgets

    from alliances.models import Institution
    from contracts.models import InsuredPerson
    from settlement.models import OutpatientClaim

    class YesNo(widgets.BooleanWidget):
        def clean(self, value, row=None, **kwargs):
            return value in ("是", "Y", "1")

    class ClaimResource(resources.ModelResource):
        serial = fields.Field("serial", "结算流水号")
        person = fields.Field("person", "身份证号", widgets.ForeignKeyWidget(InsuredPerson, "id_number"))
        institution = fields.Field("institution", "机构编码", widgets.ForeignKeyWidget(Institution, "code"))
        visit_date = fields.Field("visit_date", "就诊日期", widgets.DateWidget("%Y-%m-%d"))
        visit_type = fields.Field("visit_type", "门诊类型")
        total_cost = fields.Field("total_cost", "总费用", widgets.DecimalWidget())
        fund_paid = fields.Field("fund_paid", "统筹支付", widgets.DecimalWidget())
        personal_paid = fields.Field("personal_paid", "个人负担", widgets.DecimalWidget())
        referral = fields.Field("referral", "转诊", YesNo())

        class Meta:
            model = OutpatientClaim
            fields = ("serial", "person", "institution", "visit_date", "visit_type", "total_cost", "fund_paid",
                      "personal_paid", "referral")
            use_bulk = True
            batch_size = 5000
            skip_diff = True
            force_init_instance = True
            skip_unchanged = False
            report_skipped = False

        def before_save_instance(self, instance, row, **kwargs):
            instance.insurance_type = instance.person.insurance_type

    with open(path, encoding="utf-8") as handle:
        dataset = tablib.Dataset().load(handle.read(), format="csv")
    result = ClaimResource().import_data(dataset, raise_errors=True)
    assert not result.has_errors()
    return len(dataset)


def measure_copy(path):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_claims")
        cursor.execute("CREATE TABLE bench_raw_claims (" + ", ".join(f"c{i} text" for i in range(len(HEADERS))) + ")")
        with open(path, "rb") as handle, cursor.cursor.copy("COPY bench_raw_claims FROM STDIN (FORMAT csv, HEADER true)") as copy:
            while block := handle.read(1 << 20):
                copy.write(block)
        cursor.execute("SELECT count(*) FROM bench_raw_claims")
        rows = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_raw_claims")
    return rows


def floor_file(csv_path):
    """The csv's rows as the claims table stores them (keys resolved, 否/是 as booleans), for the floor."""
    from django.db import connection

    path = csv_path.with_name(csv_path.stem + ".resolved.csv")
    if path.exists():
        return path
    with connection.cursor() as cursor:
        cursor.execute("SELECT id_number, id, insurance_type FROM contracts_insuredperson")
        persons = {number: (pk, kind) for number, pk, kind in cursor.fetchall()}
        cursor.execute("SELECT code, id FROM alliances_institution")
        institutions = dict(cursor.fetchall())
    with open(csv_path, encoding="utf-8") as source, open(path, "w", newline="", encoding="utf-8") as target:
        rows, writer = csv.reader(source), csv.writer(target)
        next(rows)
        for serial, number, code, day, visit_type, _disease, total, fund, personal, referral in rows:
            person, kind = persons[number]
            writer.writerow([serial, day, kind, visit_type, total, fund, personal, referral == "是", institutions[code], person])
    return path


FLOOR_COLUMNS = "serial, visit_date, insurance_type, visit_type, total_cost, fund_paid, personal_paid, referral, institution_id, person_id"


def measure_floor(path):
    """COPY of the same rows into a copy of the claims table: its constraints, indexes and foreign keys.

    What PostgreSQL itself needs to land these rows with the claims table's integrity: the floor the
    import's rate is read against (the import also validates, checks scope and writes history).
    """
    from django.db import connection, transaction

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_floor_claims")
        cursor.execute("CREATE TABLE bench_floor_claims (LIKE settlement_outpatientclaim INCLUDING ALL)")
        for column, target in (("institution_id", "alliances_institution"), ("person_id", "contracts_insuredperson"),
                               ("disease_id", "contracts_disease")):
            cursor.execute(f"ALTER TABLE bench_floor_claims ADD FOREIGN KEY ({column}) REFERENCES {target} (id) "
                           "DEFERRABLE INITIALLY DEFERRED")
    with connection.cursor() as cursor, transaction.atomic():
        with open(path, "rb") as handle, cursor.cursor.copy(
            f"COPY bench_floor_claims ({FLOOR_COLUMNS}) FROM STDIN (FORMAT csv)"
        ) as copy:
            while block := handle.read(1 << 20):
                copy.write(block)
    with connection.cursor() as cursor:  # the deferred key checks ran at the commit above
        cursor.execute("SELECT count(*) FROM bench_floor_claims")
        rows = cursor.fetchone()[0]
        cursor.execute("DROP TABLE bench_floor_claims")
    return rows


def measure_city_floor(path):
    """COPY of the same rows into the city's claims table itself (its 10 million rows' indexes), the
    deferred key checks run, then rolled back."""
    from django.db import connection, transaction

    with connection.cursor() as cursor, transaction.atomic():
        with open(path, "rb") as handle, cursor.cursor.copy(
            f"COPY settlement_outpatientclaim ({FLOOR_COLUMNS}) FROM STDIN (FORMAT csv)"
        ) as copy:
            while block := handle.read(1 << 20):
                copy.write(block)
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the foreign key checks a commit would run
        cursor.execute("SELECT count(*) FROM settlement_outpatientclaim WHERE serial LIKE %s", [f"{SERIAL_PREFIX}%"])
        rows = cursor.fetchone()[0]
        transaction.set_rollback(True)
    return rows


class RefreshClock:
    """Seconds the import spends refreshing the KPI aggregates of its months (inside its landing)."""

    seconds = 0.0

    @classmethod
    def watch(cls):
        from settlement.kpi_aggregates.services import KpiDelta

        for name in ("add_landed", "apply"):
            original = getattr(KpiDelta, name)

            def timed(delta, *args, original=original):
                started = time.perf_counter()
                original(delta, *args)
                cls.seconds += time.perf_counter() - started

            setattr(KpiDelta, name, timed)


MEASURES = {"portal": measure_portal, "die": measure_die, "copy": measure_copy,
            "floor": measure_city_floor if CITY else measure_floor}


def child(kind, path):
    import django

    django.setup()
    backend = BackendCpu().watch() if kind == "portal" else None
    RefreshClock.watch()
    started = time.perf_counter()
    rows = MEASURES[kind](Path(path))
    seconds = time.perf_counter() - started
    print(f"{rows} {seconds:.3f} {backend.seconds() if backend else 0:.2f} {RefreshClock.seconds:.2f}")


def run_child(label, kind, path, fresh=True):
    if fresh:
        truncate_claims()
    flags = ["--city"] if CITY else []
    proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(path), *flags], stdout=subprocess.PIPE, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(f"{label}: 失败（退出码 {proc.returncode}）")
        return None
    rows, seconds, pg_cpu, refresh = output.split()
    rows, seconds, pg_cpu, refresh = int(rows), float(seconds), float(pg_cpu), float(refresh)
    peak_mb = usage.ru_maxrss / 1024  # Linux reports kilobytes
    cpu = usage.ru_utime + usage.ru_stime  # the Python process only; PostgreSQL's own CPU is not in it
    print(
        f"{label:<44} {rows:>9,} 行 {seconds:>8.2f} s {rows / seconds:>10,.0f} 行/s  "
        f"峰值内存 {peak_mb:>6.0f} MB  Python CPU {cpu:>7.2f} s  "
        f"PostgreSQL写入CPU {pg_cpu:>6.2f} s  KPI刷新 {refresh:>6.2f} s  负载 {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return rows / seconds, peak_mb


def load_text():
    return "、".join(f"{value:.1f}" for value in os.getloadavg())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PATH"))
    parser.add_argument("--repeat", type=int, default=1, help="每项测几次，取最好成绩（机器上有别的负载时）")
    parser.add_argument("--skip-die", action="store_true", help="不测 django-import-export（它最慢）")
    parser.add_argument("--city", action="store_true", help="导入到城市规模数据的副本中（不清空门诊结算记录，见说明）")
    parser.add_argument("--kind", action="append", choices=["portal", "die", "copy", "floor"],
                        help="只测这几类（可重复）：portal 平台导入、die、copy 原始COPY、floor 同约束COPY")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    ensure_database()
    started = time.perf_counter()
    person_ids, codes, *year = setup_master_data()
    xlsx_path, csv_path, die_path = generate(person_ids, codes, *year)
    print(f"准备数据（{PERSONS}名参保人、{INSTITUTIONS}家机构、文件生成）：{time.perf_counter() - started:.1f} s", flush=True)
    print(f"CPU {os.cpu_count()} 核，开始时负载（1/5/15分钟）{load_text()}", flush=True)
    cases = [
        (f"平台导入 xlsx（{XLSX_ROWS:,}行，完整校验+历史）", "portal", xlsx_path, True),
        (f"平台导入 csv（{CSV_ROWS:,}行，完整校验+历史）", "portal", csv_path, True),
        (f"平台导入 csv（前{DIE_ROWS:,}行）", "portal", die_path, True),
        # The same file again onto the rows it just wrote: validation plus an upsert that must
        # find nothing changed (no row, no history written).
        (f"平台重复导入同一 csv（前{DIE_ROWS:,}行，无变化）", "portal", die_path, False),
        *([] if args.skip_die else [(f"django-import-export（前{DIE_ROWS:,}行，use_bulk）", "die", die_path, True)]),
        (f"原始 COPY csv（{CSV_ROWS:,}行，无校验无索引）", "copy", csv_path, True),
        (f"COPY 到同约束同索引同外键的表（{CSV_ROWS:,}行）", "floor", floor_file(csv_path), True),
    ]
    floor_label, csv_label = cases[-1][0], cases[1][0]
    cases = [case for case in cases if not args.kind or case[1] in args.kind]
    best = {}
    for _ in range(args.repeat):
        for label, kind, path, fresh in cases:
            figures = run_child(label, kind, path, fresh)
            if figures and (label not in best or figures[0] > best[label][0]):
                best[label] = figures
    if args.repeat > 1:
        print(f"最好成绩（{args.repeat}次中）：")
        for label, (rate, peak_mb) in best.items():
            print(f"  {label:<44} {rate:>10,.0f} 行/s  峰值内存 {peak_mb:>6.0f} MB")
    portal_csv = best.get(csv_label)
    if portal_csv and floor_label in best:
        print(f"平台导入 csv 的速度是同完整性 COPY 的 {portal_csv[0] / best[floor_label][0]:.0%}（后者不校验、不查范围、不写历史）")
    if CITY:
        remove_bench_claims()  # the copy as it was: no bench rows, June's aggregates from its own claims
    print(f"结束时负载（1/5/15分钟）{load_text()}")
    print("目标：xlsx ≥ 25,000 行/s；csv ≥ 50,000 行/s；100万行csv峰值内存 < 500 MB")


if __name__ == "__main__":
    main()
