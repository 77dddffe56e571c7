from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ContractsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "contracts"
    verbose_name = "参保人与家庭医生签约"

    def ready(self):
        post_migrate.connect(_default_package, sender=self, dispatch_uid="contracts.default_package")


def _default_package(sender, **kwargs):
    # Here, not in alliances' post_migrate: alliances may not import contracts.
    from .seeding import ensure_default_package

    ensure_default_package()
