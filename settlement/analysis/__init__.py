"""Operating analysis (SPEC §10): the DRG indices per institution, pool, group and month.

`drg` computes the indices in PostgreSQL over the same per-case points statement a DRG run uses;
`export` writes the institution table (drg_report and the page's xlsx); `admin` is the 运行分析 page.
`kpis` computes the KPIs of §6.4, `dashboard` is the KPI dashboard (with `kpi_trends`, monthly), `aggregates`
holds the DRG indices' pre-aggregates.
"""
