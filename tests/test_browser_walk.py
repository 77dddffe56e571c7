"""The demo walked in a real (headless) Chromium as each of its roles (issue 12): every page linked from
the admin home and one level into its lists, with no 4xx/5xx, no code word of the program on screen,
and no unformatted money in a results table. Screenshots at 1,366 px go to var/screenshots/."""
import dataclasses
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from settlement.demo import DEMO_LOGINS, default_year
from settlement.engine.base import registered_schemes
from settlement.engine.models import UnitResult
from tests.browser import CHROMIUM_ARGS, chromium  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"  # git-ignored
WIDTH = 1366  # the common office screen
OBJECTS_PER_LIST = 1


def code_words():
    """Identifiers of the program a clerk must never read: scheme keys, parameter names and their coded
    values, and the keys results used to show raw."""
    words = {"classes", "diseases", "add_all", "highest_only", "tiered", "cliff", "county_band", "retention",
             "quota_base", "quota_diseases", "actual_inside", "actual_outside", "by_category", "by_disease", "None"}
    for scheme, rule in registered_schemes().items():
        words.add(scheme)
        for field in dataclasses.fields(rule.params_class):
            if "_" in field.name or len(field.name) > 4:
                words.add(field.name)
            words.update(str(k) for k in (field.metadata.get("choice_labels") or {}))
    return sorted(words)


CODE_WORD = re.compile(r"(?<![A-Za-z_])(" + "|".join(map(re.escape, code_words())) + r")(?![A-Za-z_])")
# A figure in yuan as the database holds it: no thousands separator (4+ digits before the point)
# or a hyphen-minus in front. Formatted money reads 1,234.56 and −1,234.56.
RAW_MONEY = re.compile(r"(?<![\d,.])(-\d[\d,]*\.\d\d|\d{4,}\.\d\d)(?![\d])")
RESULT_TABLES = "#result_list, #results-group table, .unit-figures, .detail-table"
SKIP = re.compile(r"/logout/|/password_change/|/export|/template|/history/|/jsi18n/|\?_to_field|/r/\d+/")


@pytest.fixture
def demo_world(live_server, transactional_db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # five logins
    call_command("seed_demo", "--size", "small", stdout=StringIO())
    for scheme in sorted(registered_schemes()):
        call_command("settle", scheme, "--year", str(default_year()), "--sync", stdout=StringIO())
    # Next year's drafts of every policy: their edit forms are walked too (issue 12: no JSON, no keys).
    call_command("policy", "load", "--preset", "defaults", "--year", str(default_year() + 1), stdout=StringIO())
    capitation = UnitResult.objects.filter(run__scheme="capitation").order_by("unit_code").first()
    return live_server, capitation


def draft_policy_pages():
    from settlement.engine.models import PaymentPolicy

    drafts = PaymentPolicy.objects.filter(year=default_year() + 1, status="草稿").order_by("scheme")
    return [f"/admin/settlement/paymentpolicy/{pk}/change/" for pk in drafts.values_list("pk", flat=True)]


def login(page, base, username, password):
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")


def links(page, selector):
    hrefs = page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('href'))")
    return [h for h in hrefs if h and h.startswith("/") and not SKIP.search(h)]


def check(page, base, path, problems):
    response = page.goto(base + path, wait_until="domcontentloaded")
    if response is None or response.status >= 400:
        problems.append(f"{path}: HTTP {response.status if response else '无响应'}")
        return False
    text = page.inner_text("body")
    for word in sorted(set(CODE_WORD.findall(text))):
        problems.append(f"{path}: 页面出现代码词“{word}”")
    for table in page.query_selector_all(RESULT_TABLES):
        for raw in sorted(set(RAW_MONEY.findall(table.inner_text()))):
            problems.append(f"{path}: 结果表中金额未格式化“{raw}”")
    return True


def test_every_role_walks_the_demo_without_errors_codes_or_raw_money(demo_world, chromium):
    from playwright.sync_api import sync_playwright

    server, capitation = demo_world
    base = server.url
    problems, visited = [], 0
    forms_seen = set()  # an empty add form is the same page for every role that may open it
    drafts = draft_policy_pages()  # read before Playwright's event loop runs: the ORM refuses inside it
    assert len(drafts) >= len(registered_schemes())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True)
        try:
            for username, _role, _scope, password in DEMO_LOGINS:
                context = browser.new_context(locale="zh-CN", viewport={"width": WIDTH, "height": 900})
                context.set_default_timeout(30_000)
                page = context.new_page()
                login(page, base, username, password)
                seen = set()
                check(page, base, "/admin/", problems)
                extra = drafts if username == DEMO_LOGINS[0][0] else []
                for path in dict.fromkeys(links(page, "#content-main a") + extra):
                    if path in seen or path in forms_seen:
                        continue
                    seen.add(path)
                    if path.endswith("/add/"):
                        forms_seen.add(path)
                    if not check(page, base, path, problems):
                        continue
                    visited += 1
                    # one level in: the first objects of a list, and the list's own tool pages
                    inner = links(page, "#result_list tbody th a")[:OBJECTS_PER_LIST] + links(page, ".object-tools a")
                    for deeper in dict.fromkeys(inner):
                        if deeper not in seen:
                            seen.add(deeper)
                            visited += check(page, base, deeper, problems)
                context.close()
            shoot(browser, base, capitation)
        finally:
            browser.close()
    print(f"浏览器巡检：{len(DEMO_LOGINS)}个角色共打开{visited}个页面")
    assert visited > 100, f"only {visited} pages visited"
    assert not problems, "\n".join(problems)


def shoot(browser, base, result):
    """Full-page screenshots at 1,366 px of the home page, a run, a unit result and its 清算单."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(locale="zh-CN", viewport={"width": WIDTH, "height": 900})
    page = context.new_page()
    username, _role, _scope, password = DEMO_LOGINS[0]
    login(page, base, username, password)
    for name, path in (
        ("home", "/admin/"),
        ("run", f"/admin/settlement/settlementrun/{result.run_id}/change/"),
        ("unit_result", f"/admin/settlement/unitresult/{result.pk}/change/"),
        ("statement", f"/admin/settlement/unitresult/{result.pk}/statement/"),
        ("unit_results", "/admin/settlement/unitresult/"),
    ):
        page.goto(base + path)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    context.close()
