from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate


class AlliancesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "alliances"
    verbose_name = "机构与医共体"

    def ready(self):
        post_migrate.connect(_sync_roles, dispatch_uid="alliances.sync_roles")


def _sync_roles(sender, using="default", **kwargs):
    # post_migrate is sent once per app; permissions of every app exist after the last one.
    if sender is not list(apps.get_app_configs())[-1]:
        return
    from .seeding import ensure_kpi_targets
    from .services import sync_role_groups

    sync_role_groups(using=using)
    ensure_kpi_targets()
