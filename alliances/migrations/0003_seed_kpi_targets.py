"""Default KPI targets from the Kaifeng plan (KF §3), editable afterwards as KpiTarget rows."""
from django.db import migrations

from alliances.seeding import DEFAULT_KPI_TARGETS as DEFAULTS, ensure_kpi_targets


def seed(apps, schema_editor):
    ensure_kpi_targets(apps.get_model("alliances", "KpiTarget"))


def unseed(apps, schema_editor):
    KpiTarget = apps.get_model("alliances", "KpiTarget")
    KpiTarget.objects.filter(year=None, kpi__in=[row[0] for row in DEFAULTS]).delete()


class Migration(migrations.Migration):
    dependencies = [("alliances", "0002_budget_workflow")]

    operations = [migrations.RunPython(seed, unseed)]
