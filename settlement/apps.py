from django.apps import AppConfig


class SettlementConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "settlement"
    verbose_name = "结算与支付"

    def ready(self):
        # alliances' assessment scoring reads the KPIs through this hook (it may not import settlement).
        from alliances.services_budget import register_kpi_figures

        from .analysis.kpis import unit_kpis

        register_kpi_figures(unit_kpis)
