"""The 运行分析 entry of the admin: a proxy of the inpatient cases it reads, so that the page has a
place in the navigation (分析) and a permission of its own (view_drganalysis), scoped like the cases."""
from settlement.models import InpatientCase

__all__ = ["DrgAnalysis"]


class DrgAnalysis(InpatientCase):
    class Meta:
        proxy = True
        verbose_name = "DRG运行分析"
        verbose_name_plural = verbose_name
        default_permissions = ("view",)
