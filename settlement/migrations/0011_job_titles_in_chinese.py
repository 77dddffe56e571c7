"""Settlement jobs created before the titles named the scheme in Chinese ("2025年capitation结算")."""
from django.db import migrations

SCHEMES = {
    "capitation": "门诊按人头付费", "special_outpatient": "二类门特按病种按人头付费", "family_doctor": "家庭医生签约服务费",
    "alliance_budget": "医共体总额付费", "drg": "DRG点数法", "bed_day": "按床日付费", "disease": "按病种付费",
}


def forwards(apps, schema_editor):
    Job = apps.get_model("settlement", "Job")
    for key, label in SCHEMES.items():
        for job in Job.objects.filter(kind="settlement", title__endswith=f"年{key}结算"):
            job.title = job.title[: -len(f"{key}结算")] + f"{label}结算"
            job.save(update_fields=["title"])


class Migration(migrations.Migration):
    dependencies = [("settlement", "0010_job_kinds_of_benefits_and_simulation")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
