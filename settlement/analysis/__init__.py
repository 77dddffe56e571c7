"""Operating analysis (SPEC §10): the DRG indices per institution, pool, group and month.

`drg` computes the indices in PostgreSQL over the same per-case points statement a DRG run uses;
`export` writes the institution table (drg_report and the page's xlsx); `admin` is the 运行分析 page.
The KPI dashboard still lives in alliances/ and moves here in a later step (issue 16).
"""
