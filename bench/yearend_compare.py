"""Dump or compare every UnitResult figure of the latest run of each scheme (issue 13: results identical to the cent).

    DATABASE_URL=... .venv/bin/python bench/yearend_compare.py dump before.json
    DATABASE_URL=... .venv/bin/python bench/yearend_compare.py compare before.json
"""
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

FIELDS = ("unit_code", "unit_name", "quota", "actual", "surplus", "unit_part", "fund_part", "entitled", "paid",
          "amount", "details", "warnings")


def snapshot():
    from settlement.engine.models import SettlementRun

    figures = {}
    for run in SettlementRun.objects.order_by("scheme", "year", "region_id", "-version"):
        key = f"{run.scheme}/{run.year}/{run.region_id}"
        if key in figures:
            continue
        rows = run.results.order_by("unit_code").values_list(*FIELDS)
        figures[key] = {
            "status": run.status, "warnings": run.warnings,
            "units": {row[0]: [str(v) if i < 10 else v for i, v in enumerate(row)] for row in rows},
        }
    return figures


def main():
    action, path = sys.argv[1], sys.argv[2]
    now = snapshot()
    if action == "dump":
        Path(path).write_text(json.dumps(now, ensure_ascii=False, sort_keys=True))
        print(f"{len(now)} 个结算批次，{sum(len(v['units']) for v in now.values())} 个单位结果已写入 {path}")
        return
    before = json.loads(Path(path).read_text())
    differences = 0
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key), now.get(key)
        if old is None or new is None:
            print(f"{key}: 只在{'之后' if old is None else '之前'}存在")
            differences += 1
            continue
        for code in sorted(set(old["units"]) | set(new["units"])):
            if old["units"].get(code) != new["units"].get(code):
                differences += 1
                print(f"{key} {code}: {old['units'].get(code)} → {new['units'].get(code)}")
        if old["warnings"] != new["warnings"]:
            differences += 1
            print(f"{key}: 批次提示不同")
        print(f"{key}: {len(new['units'])} 个单位")
    print("全部一致" if not differences else f"{differences} 处不同")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
