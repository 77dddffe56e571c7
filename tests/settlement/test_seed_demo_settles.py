"""After `seed_demo --size small` staff can settle every registered scheme at once (SPEC §5–§7).

One seed (≈ 15 s) serves every scheme: the module-scoped fixture seeds inside a transaction that
is rolled back at the end, so other tests see an empty database.
"""
import re
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from settlement.demo import default_year
from settlement.demo.policies import write_policies
from settlement.engine.base import registered_schemes
from settlement.engine.models import PaymentPolicy, RunStatus, SettlementRun
from settlement.models import ApprovalStatus, Assessment, Budget, Payment, Scheme

D = Decimal
YEAR = default_year()


def q2(value):
    """Half-up to 分, as SPEC §3 rounds money."""
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


SCHEMES = ["capitation", "special_outpatient", "family_doctor", "alliance_budget", "drg", "bed_day", "disease"]


@pytest.fixture(scope="module")
def settled(django_db_setup, django_db_blocker):
    from django.db import transaction

    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", "--size", "small", stdout=StringIO())
        confirm_planted_findings()
        runs = {}
        for scheme in SCHEMES:
            out = StringIO()
            call_command("settle", scheme, "--year", str(YEAR), "--sync", stdout=out)
            runs[scheme] = (SettlementRun.objects.get(scheme=scheme, year=YEAR, region=None), out.getvalue())
        yield runs
        transaction.set_rollback(True)


def confirm_planted_findings():
    """Audit the demo year and confirm every finding on one claim or case, so that statements carry
    违规扣款 lines (SPEC §9) for the walk below to add up."""
    from django.contrib.auth import get_user_model

    from settlement.audit.models import Finding
    from settlement.audit.services import decide, run_audit

    run_audit(YEAR)
    ids = list(Finding.objects.filter(year=YEAR, rule__in=["DUP01", "SPL01", "LOW01", "BEN01"])
               .values_list("pk", flat=True))
    decide(ids, get_user_model().objects.get(username="demo"), True, "演示：核实属实")


def results(run):
    return list(run.results.order_by("unit_code"))


def paid_by_unit(scheme):
    return dict(Payment.objects.filter(scheme=scheme, year=YEAR).values_list("unit_code")
                .annotate(total=Sum("amount")).values_list("unit_code", "total"))


def test_every_registered_scheme_has_an_approved_demo_policy(settled, django_db_blocker):
    assert sorted(registered_schemes()) == sorted(SCHEMES)
    with django_db_blocker.unblock():
        policies = {p.scheme: p for p in PaymentPolicy.objects.filter(year=YEAR, region__isnull=True)}
        # … and the benefit engine's policy (SPEC §6.8), which settles nothing
        assert sorted(policies) == sorted([*SCHEMES, "benefits"])
        assert {p.status for p in policies.values()} == {ApprovalStatus.APPROVED}
        assert policies["capitation"].name == "湖州预设"
        assert policies["special_outpatient"].name == policies["family_doctor"].name == "攀枝花预设"
        assert policies["alliance_budget"].name == "开封预设"
        # Seeding again, or writing the policies again, neither duplicates nor rewrites them.
        call_command("seed_demo", "--size", "small", stdout=StringIO())
        assert write_policies(YEAR, log=lambda _line: None) == 0
        assert PaymentPolicy.objects.filter(year=YEAR).count() == len(SCHEMES) + 1


@pytest.mark.parametrize("scheme", SCHEMES)
def test_scheme_computes_with_consistent_figures(settled, django_db_blocker, scheme):
    run, output = settled[scheme]
    assert run.status == RunStatus.COMPUTED, run.failure_reason
    assert "已计算" in output
    with django_db_blocker.unblock():
        units = results(run)
        paid = paid_by_unit(scheme)
    assert units and run.units_total == run.units_done == len(units)
    for r in units:
        # Every scheme: S = Q − A, the parts add up to S, year-end = E − 已拨付 − 违规扣款 (SPEC §5, §6, §9).
        assert r.surplus == r.quota - r.actual, r.unit_code
        assert r.unit_part + r.fund_part == r.surplus, r.unit_code
        assert r.amount == r.entitled - r.paid - r.recovery, r.unit_code
        extra = r.actual if scheme == "capitation" else D("0")  # capitation pays claims as they occur
        assert r.paid == (paid.get(r.unit_code) or D("0")) + extra, r.unit_code
    assert sum(r.unit_part for r in units) + sum(r.fund_part for r in units) == sum(r.surplus for r in units)


def test_capitation_shares_are_85_percent(settled, django_db_blocker):
    run, _ = settled["capitation"]
    with django_db_blocker.unblock():
        bonus = {a.unit_code: a for a in Assessment.objects.filter(year=YEAR)}
        units = results(run)
    for r in units:
        a = bonus.get(r.unit_code)
        # Huzhou: 85% either way, moved by the alliance's assessment points (at most 5).
        if r.surplus >= 0:
            share = D("0.85") + (a.retention_bonus / 100 if a else 0)
        else:
            share = D("0.85") - (a.overspend_reduction / 100 if a else 0)
        assert r.unit_part == q2(r.surplus * share), r.unit_code
        assert r.entitled == r.actual + r.unit_part, r.unit_code


def test_alliance_budget_entitlement_between_95_and_100_percent_of_b(settled, django_db_blocker):
    run, _ = settled["alliance_budget"]
    with django_db_blocker.unblock():
        budgets = dict(Budget.objects.filter(year=YEAR, scheme=Scheme.ALLIANCE_BUDGET).values_list("unit_code")
                       .annotate(total=Sum("amount")).values_list("unit_code", "total"))
        scores = dict(Assessment.objects.filter(year=YEAR).values_list("unit_code", "score"))
        units = results(run)
    for r in units:
        b = budgets[r.unit_code]
        assert r.quota == b
        # E = B − 5% × B × (1 − min(1, score / 90)); unit part = E − A
        f = min(D("1"), scores[r.unit_code] / 90)
        assert r.entitled == q2(b - b * D("0.05") * (1 - f)), r.unit_code
        assert r.unit_part == r.entitled - r.actual


def test_family_doctor_entitlement_is_a_times_score(settled, django_db_blocker):
    run, _ = settled["family_doctor"]
    with django_db_blocker.unblock():
        scores = dict(Assessment.objects.filter(year=YEAR).values_list("unit_code", "score"))
        units = results(run)
    for r in units:
        score = scores.get(r.unit_code, D("100"))
        assert r.entitled == q2(r.actual * score / 100), r.unit_code
        assert r.unit_part == r.entitled - r.actual
    assert any(r.unit_code not in scores for r in units)  # some institutions have no assessment: 100


def test_special_outpatient_sharing(settled, django_db_blocker):
    run, _ = settled["special_outpatient"]
    with django_db_blocker.unblock():
        units = results(run)
    for r in units:
        if r.surplus >= 0:
            assert r.entitled == r.actual + q2(r.surplus * D("0.8")), r.unit_code
        else:
            overspend = -r.surplus
            # E = Q + 0.4 × min(O, 10% × Q)
            assert r.entitled == r.quota + q2(D("0.4") * min(overspend, r.quota * D("0.1")))


def test_drg_pools_distribute_their_budget(settled, django_db_blocker):
    run, _ = settled["drg"]
    assert not any("超出舍入误差" in w for w in run.warnings)
    with django_db_blocker.unblock():
        budgets = dict(Budget.objects.filter(year=YEAR, scheme=Scheme.DRG).values_list("unit_code", "amount"))
        units = results(run)
    pools = {}
    for r in units:
        pools.setdefault(r.details["pool_code"], []).append(r)
    assert len(pools) > 1
    for code, members in pools.items():
        points = D(str(members[0].details["pool_points"]))
        # Σ E = B up to rounding: each E to 分 (≤ 0.005 each) and PV to 6 places (≤ 0.0000005 per point).
        tolerance = D("0.005") * len(members) + points * D("0.0000005")
        assert abs(sum(r.entitled for r in members) - budgets[code]) <= tolerance, code


# The family-doctor fee has no standard to set: Q is the fee of everyone signed on 30 June, A of those
# served, so a unit only ends below its Q.
FROM_STANDARDS = [scheme for scheme in SCHEMES if scheme != "family_doctor"]


@pytest.mark.parametrize("scheme", FROM_STANDARDS)
def test_demo_year_lands_on_both_sides_of_standards_set_from_last_year(settled, django_db_blocker, scheme):
    """Issue 12: standards and budgets from the previous year's 测算, so the demo year shows surplus and
    overspend side by side in every scheme that has them."""
    run, _ = settled[scheme]
    with django_db_blocker.unblock():
        surpluses = [r.surplus for r in results(run)]
    assert any(s > 0 for s in surpluses) and any(s < 0 for s in surpluses)


def test_demo_capitation_warns_only_of_the_missing_standards(settled, django_db_blocker):
    from settlement.demo import catalogue

    run, _ = settled["capitation"]
    warned = set(re.findall(r"（([A-Z]\d\d(?:\.\d)?)）", " ".join(run.warnings)))
    assert warned == set(catalogue.CAPITATION_MISSING)


class _Statement(HTMLParser):
    """The figures of a rendered unit page or 清算单: figure rows with their parts, and detail tables
    with their body rows (money cells by column) and footer lines."""

    def __init__(self):
        super().__init__()
        self.figures, self.parts, self.tables = {}, {}, []
        self._row = self._cells = None
        self._cell = None
        self._section = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "table":
            # any other table (the DRG case list below a unit's details) ends the detail table before it
            self.tables.append({"rows": [], "footer": []} if "detail-table" in classes else None)
        elif tag in ("tbody", "tfoot", "thead"):
            self._section = tag
        elif tag == "tr":
            self._row = {"figure": attrs.get("data-figure"), "part_of": attrs.get("data-part-of"), "cells": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"money": "money" in classes, "text": "", "span": int(attrs.get("colspan") or 1)}

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            row, self._row = self._row, None
            if self._section == "thead":
                return
            amounts = [amount(c["text"]) for c in row["cells"] if c["money"]]
            if row["figure"]:
                self.figures[row["figure"]] = amounts[0]
            elif row["part_of"]:
                self.parts.setdefault(row["part_of"], []).append((row["cells"][0]["text"].strip(), amounts[0]))
            elif self.tables and self.tables[-1] is not None and self._section == "tbody":
                self.tables[-1]["rows"].append([c for c in row["cells"]])
            elif self.tables and self.tables[-1] is not None and self._section == "tfoot":
                # the column the amount stands in: the columns spanned before it
                self.tables[-1].setdefault("column", row["cells"][0]["span"])
                self.tables[-1]["footer"].append((row["cells"][0]["text"].strip(), amounts[0]))
        elif tag == "table":
            self._section = None


def amount(text):
    """'−1,234.50' as shown → Decimal('-1234.50'); '—' (no figure) → None."""
    if text.strip() == "—":
        return None
    return D(text.strip().replace(",", "").replace("\u2212", "-"))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_figure_of_every_statement_adds_up_from_its_rows(settled, django_db_blocker, scheme, client):
    """Issue 18, finding 2: on a unit page and its 清算单, each figure is the sum of the rows shown under
    it, or a 尾差 line says how it was rounded; and what is shown is the figure the run stored."""
    from django.contrib.auth import get_user_model
    from django.urls import reverse

    run, _ = settled[scheme]
    with django_db_blocker.unblock():
        client.force_login(get_user_model().objects.get(username="demo"))
        checked = recovered = 0
        for result in results(run):
            for url in (reverse("admin:settlement_unitresult_statement", args=[result.pk]),
                        reverse("admin:settlement_unitresult_change", args=[result.pk])):
                page = _Statement()
                page.feed(client.get(url).content.decode())
                shown = page.figures
                stored = {name: getattr(result, name) for name in
                          ("quota", "actual", "surplus", "unit_part", "fund_part", "entitled", "paid", "recovery",
                           "amount")}
                assert shown == stored, url
                # the identities of the statement's own lines
                assert shown["surplus"] == shown["quota"] - shown["actual"]
                assert shown["unit_part"] + shown["fund_part"] == shown["surplus"]
                assert shown["amount"] == shown["entitled"] - shown["paid"] - shown["recovery"]
                if result.recovery:
                    # the 违规扣款明细 is a table whose rows add up to the figure
                    assert any(t and t["footer"] and t["footer"][-1] == ("违规扣款", result.recovery) for t in page.tables), url
                    recovered += 1
                for name, parts in page.parts.items():
                    rounding = [a for label, a in parts if label.startswith("其中：尾差")]
                    assert sum((a for _l, a in parts), D("0")) == shown[name], (url, name, parts)
                    assert all(abs(a) <= D("0.01") * len(parts) for a in rounding), (url, name, parts)
                for table in page.tables:
                    if not table or not table["footer"]:
                        continue
                    column = table["column"]
                    assert table["rows"][0][column]["money"], (url, "the total stands under a money column")
                    rows_sum = sum((amount(r[column]["text"]) for r in table["rows"]), D("0"))
                    footer = table["footer"]
                    assert footer[0] == ("合计（各行之和）", rows_sum), (url, footer)
                    rounding = sum((a for label, a in footer[1:-1] if label.startswith("尾差")), D("0"))
                    assert rows_sum + rounding == footer[-1][1], (url, footer)
                    # each row rounded on its own: the 尾差 is at most ½ 分 per row
                    assert abs(rounding) <= D("0.005") * len(table["rows"]) + D("0.005"), (url, footer)
                    checked += 1
    if scheme in ("capitation", "bed_day", "disease"):
        assert checked, "the scheme's detail tables explain a figure"
    if scheme in ("capitation", "drg"):
        assert recovered, "the demo's confirmed findings are deducted in this scheme's statements"


def test_each_confirmed_finding_is_deducted_once_and_exactly_its_amount(settled, django_db_blocker):
    """Σ 违规扣款 over every scheme's units = Σ of the deducted findings' 涉及金额; no finding twice."""
    from settlement.audit.models import Finding, RecoveryItem

    with django_db_blocker.unblock():
        runs = [run for run, _ in settled.values()]
        items = list(RecoveryItem.objects.filter(unit__run__in=runs).values_list("finding_id", "amount"))
        total = sum((r.recovery for run in runs for r in run.results.all()), D("0"))
        amounts = dict(Finding.objects.filter(pk__in=[f for f, _ in items]).values_list("pk", "amount"))
    assert items and len({f for f, _ in items}) == len(items)
    assert all(amount == amounts[f] > 0 for f, amount in items)
    assert total == sum(a for _, a in items)

