from django.db import migrations

from contracts.seeding import ensure_default_package


def seed_default_package(apps, schema_editor):
    ensure_default_package(apps.get_model("contracts", "ServicePackage"), apps.get_model("contracts", "ServicePackageItem"))


class Migration(migrations.Migration):
    dependencies = [("contracts", "0001_initial")]

    operations = [migrations.RunPython(seed_default_package, migrations.RunPython.noop)]
