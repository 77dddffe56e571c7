"""Rows the portal cannot work without, created by migration and re-created after a flush.

`flush` (and every migrate) sends post_migrate, so a test that empties the database or an operator
who resets it gets these back, the way Django re-creates permissions.
"""
from decimal import Decimal

DEFAULT_PACKAGE = {"code": "JC2021", "name": "基础服务包（攀枝花2021）", "fee": Decimal("100.00")}
DEFAULT_PACKAGE_ITEMS = [
    ("健康档案管理", "建立并动态更新居民健康档案", 1),
    ("健康评估", "每年一次健康状况评估与指导", 1),
    ("慢病随访", "高血压、糖尿病等慢病患者随访", 4),
    ("预约转诊", "优先预约上级医院专家号源与转诊", 1),
    ("健康咨询", "电话或线上健康咨询", 12),
]


def ensure_default_package(ServicePackage=None, ServicePackageItem=None):
    """A default package (PZH 2021: 100 元/person·year) exists unless the bureau already has one."""
    if ServicePackage is None:
        from .models import ServicePackage, ServicePackageItem
    if ServicePackage.objects.filter(is_default=True).exists():
        return
    package, created = ServicePackage.objects.get_or_create(
        code=DEFAULT_PACKAGE["code"], defaults={**DEFAULT_PACKAGE, "is_default": True},
    )
    if not created:
        ServicePackage.objects.filter(pk=package.pk).update(is_default=True)
        return
    ServicePackageItem.objects.bulk_create(
        ServicePackageItem(package=package, name=name, content=content, times_per_year=times)
        for name, content, times in DEFAULT_PACKAGE_ITEMS
    )
