from django.apps import AppConfig


class SettlementConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "settlement"
    verbose_name = "结算与支付"

    def ready(self):
        # alliances and contracts may not import settlement: they call these doors (alliances.hooks).
        from alliances import hooks

        from . import doors
        from .audit import rules  # noqa: F401  (registers the audit rules recovery splits findings by)
        from .analysis.kpis import unit_kpis
        from .imports import door as spreadsheets

        hooks.fill(
            spreadsheets=spreadsheets, kpi_figures=unit_kpis, save_alliance_budget=doors.save_alliance_budget,
            save_assessment=doors.save_assessment, designated_persons=doors.designated_persons,
        )
