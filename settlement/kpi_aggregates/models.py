"""Pre-aggregated figures of the KPI dashboard (issue 13).

Imported at the end of settlement/models.py so that Django registers them in the `settlement` app.
Rows are derived data only: no history, no admin, never edited by hand; services.py deletes and
rewrites them per (year, month), and per year for the yearly figures.

What each row depends on, and so when it goes stale (services.py keeps the claim and case side
current after every import and admin change; everything else needs `rebuild_kpi_aggregates`):
- KpiProviderMonth (institution): claims and cases only.
- KpiProviderMonth (alliance): also the memberships (the alliance of the institution on the day of care).
- KpiProviderMonth disease_cases / disease_exits: also the approved per-disease standards (which cases
  are per-disease) and the exit requests (refreshed by decide_exit_request).
- KpiPopulationMonth (county): also the persons' county and the institutions' county and level.
- KpiPopulationMonth (alliance): also the coverage of the year (contracts, memberships, default alliances).
- KpiUnitYear: persons (status, county) and contracts, not claims at all.
"""
from django.db import models

__all__ = ["KpiAggregateYear", "KpiProviderMonth", "KpiPopulationMonth", "KpiUnitYear"]

MONEY = {"max_digits": 16, "decimal_places": 2, "default": 0}


class KpiAggregateYear(models.Model):
    """A year whose aggregates a full rebuild wrote; the dashboard warns about years without one."""

    year = models.PositiveSmallIntegerField("年度", unique=True)
    built_at = models.DateTimeField("生成时间")
    seconds = models.DecimalField("耗时（秒）", max_digits=10, decimal_places=2)

    class Meta:
        verbose_name = "指标汇总年度"
        verbose_name_plural = verbose_name


class ProviderLevel(models.TextChoices):
    INSTITUTION = "institution", "机构"
    ALLIANCE = "alliance", "医共体"


class KpiProviderMonth(models.Model):
    """Care given in one month by one institution, or by the members of one alliance on the day of care."""

    year = models.PositiveSmallIntegerField("年度")
    month = models.PositiveSmallIntegerField("月份")
    level = models.CharField("层级", max_length=12, choices=ProviderLevel.choices)
    unit_id = models.BigIntegerField("单位ID")
    claims = models.BigIntegerField("门诊人次", default=0)
    claim_total = models.DecimalField("门诊总费用", **MONEY)
    claim_personal = models.DecimalField("门诊个人负担", **MONEY)
    referrals = models.BigIntegerField("门诊转诊", default=0)
    cases = models.BigIntegerField("住院人次", default=0)
    case_total = models.DecimalField("住院总费用", **MONEY)
    case_personal = models.DecimalField("住院个人负担", **MONEY)
    transfers = models.BigIntegerField("住院转院", default=0)
    bed_day_cases = models.BigIntegerField("床日病例", default=0)
    bed_days = models.BigIntegerField("床日数", default=0)
    bed_day_total = models.DecimalField("床日总费用", **MONEY)
    # 病种退出率 (alliances.kpis.disease_exit_rate): per-disease cases, and those with an approved exit.
    disease_cases = models.BigIntegerField("按病种付费病例", default=0)
    disease_exits = models.BigIntegerField("退出按病种付费病例", default=0)

    class Meta:
        verbose_name = "机构月度指标汇总"
        verbose_name_plural = verbose_name
        constraints = [
            models.UniqueConstraint(fields=["year", "month", "level", "unit_id"], name="kpi_provider_month_unique"),
        ]


class PopulationBasis(models.TextChoices):
    COUNTY = "county", "参保县区"
    ALLIANCE = "alliance", "归属医共体"


class KpiPopulationMonth(models.Model):
    """What happened in one month to the persons insured in one county, or covered by one alliance
    (contracts/coverage.py), split by whether the care was given in their own county and at a
    primary institution."""

    year = models.PositiveSmallIntegerField("年度")
    month = models.PositiveSmallIntegerField("月份")
    basis = models.CharField("口径", max_length=12, choices=PopulationBasis.choices)
    unit_id = models.BigIntegerField("单位ID")
    in_county = models.BooleanField("县域内")
    primary = models.BooleanField("基层机构")
    visits = models.BigIntegerField("门诊人次", default=0)
    stays = models.BigIntegerField("住院人次", default=0)
    # A of the alliance budget (SPEC §6.4): 统筹支付 of the residents' 普通门诊 claims.
    resident_general_fund = models.DecimalField("居民普通门诊统筹支付", **MONEY)

    class Meta:
        verbose_name = "参保人月度指标汇总"
        verbose_name_plural = verbose_name
        constraints = [
            models.UniqueConstraint(
                fields=["year", "month", "basis", "unit_id", "in_county", "primary"], name="kpi_population_month_unique",
            ),
        ]


class UnitLevel(models.TextChoices):
    COUNTY = "county", "县区"
    ALLIANCE = "alliance", "医共体"
    INSTITUTION = "institution", "机构"


class KpiUnitYear(models.Model):
    """Figures of a unit that are not sums over months: insured and signed persons."""

    year = models.PositiveSmallIntegerField("年度")
    level = models.CharField("层级", max_length=12, choices=UnitLevel.choices)
    unit_id = models.BigIntegerField("单位ID")
    insured = models.BigIntegerField("参保人数", default=0)
    signed = models.BigIntegerField("签约人数", default=0)

    class Meta:
        verbose_name = "单位年度指标汇总"
        verbose_name_plural = verbose_name
        constraints = [models.UniqueConstraint(fields=["year", "level", "unit_id"], name="kpi_unit_year_unique")]
