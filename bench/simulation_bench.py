"""Policy simulation (SPEC §11) beside the settlement it starts from, per scheme, on seeded demo data.

For each scheme: the time of a whole run (`start_run(sync=True)`: gather, compute, persist), of a
simulation from the run's stored inputs (no gather: the common case), and of one that must gather
again (a changed gather parameter or a per-case factor). Figures are printed, never asserted; a
simulation from stored inputs is expected to cost a small fraction of the run. It settles (replacing
draft results, adding versions after approved ones) and keeps its simulations: use a bench or demo database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal_bench .venv/bin/python bench/simulation_bench.py
    options: --size small|city (seeded when the database has no claims)  --year YYYY  --repeat N
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

from settlement.demo import default_year  # noqa: E402
from settlement.engine import services, simulation  # noqa: E402
from settlement.models import OutpatientClaim  # noqa: E402

# A change per scheme that makes the simulation gather again (see each rule's gather_parameters and
# simulation_factors); None where the scheme has none.
REGATHER = {
    "capitation": ({"disease_add_mode": "highest_only"}, {}),
    "special_outpatient": ({"risk_a": "0.3"}, {}),
    "family_doctor": ({"default_score": "80"}, {}),
    "alliance_budget": None,
    "drg": ({"readmission_days": "15"}, {}),
    "bed_day": None,
    "disease": ({}, {"standards": "1.05"}),
}


def timed(work, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=["small", "city"])
    parser.add_argument("--year", type=int, default=default_year())
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not OutpatientClaim.objects.exists():
        call_command("seed_demo", "--size", args.size, "--year", str(args.year))
    print(f"{'scheme':<20}{'units':>7}{'run s':>9}{'stored s':>10}{'ratio':>8}{'regather s':>12}")
    for scheme, regather in REGATHER.items():
        run_s, run = timed(lambda: services.start_run(scheme, args.year, sync=True), args.repeat)
        stored_s, sim = timed(lambda: simulation.start_simulation(run, {}, sync=True), args.repeat)
        again = "—"
        if regather is not None:
            again_s, _ = timed(lambda: simulation.start_simulation(run, *regather, sync=True), args.repeat)
            again = f"{again_s:.3f}"
        print(f"{scheme:<20}{sim.units.count():>7}{run_s:>9.3f}{stored_s:>10.3f}{stored_s / run_s:>8.2f}{again:>12}")


if __name__ == "__main__":
    main()
