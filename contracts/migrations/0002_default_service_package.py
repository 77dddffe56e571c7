from decimal import Decimal

from django.db import migrations


def seed_default_package(apps, schema_editor):
    ServicePackage = apps.get_model("contracts", "ServicePackage")
    ServicePackageItem = apps.get_model("contracts", "ServicePackageItem")
    if ServicePackage.objects.filter(is_default=True).exists():
        return
    package = ServicePackage.objects.create(
        code="JC2021", name="基础服务包（攀枝花2021）", fee=Decimal("100.00"), is_default=True,
    )
    items = [
        ("健康档案管理", "建立并动态更新居民健康档案", 1),
        ("健康评估", "每年一次健康状况评估与指导", 1),
        ("慢病随访", "高血压、糖尿病等慢病患者随访", 4),
        ("预约转诊", "优先预约上级医院专家号源与转诊", 1),
        ("健康咨询", "电话或线上健康咨询", 12),
    ]
    ServicePackageItem.objects.bulk_create(
        ServicePackageItem(package=package, name=name, content=content, times_per_year=times)
        for name, content, times in items
    )


class Migration(migrations.Migration):
    dependencies = [("contracts", "0001_initial")]

    operations = [migrations.RunPython(seed_default_package, migrations.RunPython.noop)]
