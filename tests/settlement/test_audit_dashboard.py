"""The KPI dashboard's findings card (issue 15): counts per rule and institution, scoped, linked to the
findings list filtered alike."""
import pytest

from settlement.audit.selectors import dashboard_counts
from settlement.audit.services import run_audit
from tests import factories
from tests.settlement.audit_builders import claim

pytestmark = pytest.mark.django_db


def duplicates(inst, person, days):
    for day in days:
        claim(inst, person, day, total="120.00", personal="20.00")
        claim(inst, person, day, total="120.00", personal="20.00")


@pytest.fixture
def world(county, other_county):
    busy, quiet = factories.institution(county=county), factories.institution(county=county)
    far = factories.institution(county=other_county)
    patient = factories.person(county=county)
    duplicates(busy, patient, ["2025-03-01", "2025-03-02"])  # two DUP01
    duplicates(quiet, patient, ["2025-03-03"])                # one DUP01
    duplicates(far, patient, ["2025-03-04"])                  # one DUP01, the other county
    # The duplicates fall on four days at one institution each; 2025-05-05 at three: one FRQ02.
    for inst in (busy, quiet, far):
        claim(inst, patient, "2025-05-05")
    run_audit(2025, ["DUP01", "FRQ02"])
    return {"busy": busy, "quiet": quiet, "far": far}


def cell(counts, label_part, rule):
    row = next(r for r in counts["rows"] if label_part in r["label"])
    return row["cells"][[r["code"] for r in counts["rules"]].index(rule)]


def test_city_counts_every_rule_and_institution_and_each_count_opens_its_findings(world, client, make_user):
    city = make_user("city")
    counts = dashboard_counts(city, 2025)
    assert counts["total"] == 5  # 4 DUP01 + 1 FRQ02 (a person-level finding, no institution)
    assert [r["label"].split("（")[-1] for r in counts["rows"][:1]] == [f"{world['busy'].code}）"]
    assert cell(counts, world["busy"].code, "DUP01")["count"] == 2
    assert cell(counts, world["quiet"].code, "DUP01")["count"] == 1
    assert cell(counts, "参保人层面", "FRQ02")["count"] == 1
    totals = dict(zip([r["code"] for r in counts["rules"]], counts["totals"]))
    assert (totals["DUP01"]["count"], totals["FRQ02"]["count"], totals["SPL01"]["count"]) == (4, 1, 0)
    client.force_login(city)
    for c in (cell(counts, world["busy"].code, "DUP01"), cell(counts, "参保人层面", "FRQ02"), totals["DUP01"]):
        listing = client.get(c["url"])
        assert listing.status_code == 200 and listing.context_data["cl"].result_count == c["count"], c["url"]
    page = client.get("/admin/alliances/dashboard/?year=2025").content.decode()
    assert 'id="finding-counts"' in page and world["far"].name in page


def test_counts_are_scoped_like_the_findings(world, client, make_user, county):
    bureau = make_user("county", county.code)
    counts = dashboard_counts(bureau, 2025)
    labels = " ".join(r["label"] for r in counts["rows"])
    assert world["far"].code not in labels and counts["total"] == 4  # 3 DUP01 + the person's FRQ02 here
    staff = make_user("hospital", world["quiet"].code)
    counts = dashboard_counts(staff, 2025)
    assert counts["total"] == 1 and world["busy"].code not in " ".join(r["label"] for r in counts["rows"])
    client.force_login(staff)
    page = client.get("/admin/alliances/dashboard/?year=2025").content.decode()
    assert world["busy"].name not in page and world["quiet"].name in page


def test_a_year_without_findings_says_so(world, client, make_user):
    assert dashboard_counts(make_user("city"), 2024) is None
    client.force_login(make_user("city"))
    assert "本年度没有疑点" in client.get("/admin/alliances/dashboard/?year=2024").content.decode()
