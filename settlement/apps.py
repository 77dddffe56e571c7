from django.apps import AppConfig


class SettlementConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "settlement"
    verbose_name = "结算与支付"

    def ready(self):
        # The dashboard in alliances reads the KPI pre-aggregates through this hook (it may not import settlement).
        from alliances.kpis import register_aggregated_source

        from .kpi_aggregates import selectors

        register_aggregated_source(selectors)
