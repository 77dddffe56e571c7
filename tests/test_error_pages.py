"""What a clerk sees (issue #12): Chinese error pages that say why and lead back, navigation in the
order of the work, and a greeting with the user's own name and role."""
import re

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template import loader
from django.test import Client
from django.urls import path

from config.admin import order_app_list
from tests import factories

BACK_LINKS = ('href="javascript:history.back()"', "返回上一页", 'href="/admin/"', "返回首页")
DJANGO_ENGLISH = ("Forbidden", "Not Found", "Server Error", "Bad Request", "The requested")


def _boom(request):
    raise RuntimeError("a bug in a view")


def _denied_in_chinese(request):
    raise PermissionDenied("只有市医保局可以审批支付政策")


def _missing_in_english(request):
    raise Http404("No UnitResult matches the given query.")


# This module is also the URLconf of the tests marked `urls`: views that fail on purpose, with the
# handlers the portal's URLconf names, so those are what render the pages.
urlpatterns = [
    path("boom/", _boom),
    path("denied/", _denied_in_chinese),
    path("missing/", _missing_in_english),
]
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"


def _text(response):
    return response.content.decode()


def _assert_leads_back(html):
    for fragment in BACK_LINKS:
        assert fragment in html
    for english in DJANGO_ENGLISH:
        assert english not in html


@pytest.fixture
def hospital(county, make_user):
    factories.institution(county=county, code="H33050200001", name="吴兴区人民医院")
    return make_user("hospital", "H33050200001", username="Wu_Finance01")


def test_403_for_a_page_the_role_may_not_use_is_chinese_in_the_admin_frame(client, hospital):
    client.force_login(hospital)
    response = client.get("/admin/auth/user/")
    html = _text(response)
    assert response.status_code == 403
    assert "<h1>没有权限</h1>" in html
    assert "您的账号（医疗机构财务）没有使用此页面或执行此操作的权限" in html
    _assert_leads_back(html)
    # The admin frame: the portal's header, the sidebar and a way to log out.
    assert "医保支付方式改革管理平台" in html
    assert 'id="nav-sidebar"' in html
    assert 'id="logout-form"' in html


def test_403_shows_the_refusals_chinese_reason(client, county, make_user):
    health = make_user("health", county.code)  # no settlement.view_budget: the dashboard refuses
    client.force_login(health)
    response = client.get("/admin/alliances/dashboard/")
    assert response.status_code == 403
    html = _text(response)
    assert '<p class="errornote">您没有查看医共体运行监测看板的权限</p>' in html
    _assert_leads_back(html)


def test_404_for_a_row_outside_the_scope_says_so(client, hospital, other_county):
    foreign = factories.institution(county=other_county, code="H33050300001", name="南浔区人民医院")
    client.force_login(hospital)
    response = client.get(f"/admin/alliances/institution/{foreign.pk}/change/")
    html = _text(response)
    assert response.status_code == 404
    assert "<h1>页面不存在或不在您的数据范围内</h1>" in html
    assert '<p class="errornote">对象不存在或不在您的数据范围内</p>' in html
    assert "南浔区人民医院" not in html
    _assert_leads_back(html)
    assert 'id="logout-form"' in html


def test_404_hides_djangos_english_message(client, hospital):
    client.force_login(hospital)
    response = client.get("/admin/auth/")  # an app the role has no model of: Django's English Http404
    html = _text(response)
    assert response.status_code == 404
    assert "页面不存在或不在您的数据范围内" in html
    assert "errornote" not in html
    _assert_leads_back(html)


def test_404_for_someone_not_logged_in_uses_the_plain_frame(client, db):
    response = client.get("/no-such-page/")
    html = _text(response)
    assert response.status_code == 404
    assert "页面不存在或不在您的数据范围内" in html
    assert "Resolver404" not in html and "nav-sidebar" not in html
    _assert_leads_back(html)


@pytest.mark.urls("tests.test_error_pages")
def test_reason_filter_on_test_views(client, db):
    assert "只有市医保局可以审批支付政策" in _text(client.get("/denied/"))
    response = client.get("/missing/")
    assert response.status_code == 404
    assert "No UnitResult" not in _text(response)


@pytest.mark.urls("tests.test_error_pages")
def test_500_is_chinese(client, db):
    client.raise_request_exception = False
    response = client.get("/boom/")
    html = _text(response)
    assert response.status_code == 500
    assert "<h1>系统出错</h1>" in html
    assert "a bug in a view" not in html
    _assert_leads_back(html)


def test_500_page_needs_no_context_and_no_database():
    # No db fixture: pytest-django makes any query here raise. Rendered as Django's server_error does.
    html = loader.get_template("500.html").render()
    assert "系统出错" in html
    _assert_leads_back(html)


def test_400_is_chinese(client, db):
    response = client.get("/admin/", HTTP_HOST="not-an-allowed-host.example")
    assert response.status_code == 400
    html = _text(response)
    assert "<h1>请求无效</h1>" in html
    _assert_leads_back(html)


def test_csrf_refusal_is_chinese_and_names_the_case(db):
    browser = Client(enforce_csrf_checks=True)
    no_cookie = browser.post("/admin/login/", {"username": "x", "password": "y"})
    assert no_cookie.status_code == 403
    assert "页面已过期，请刷新后重试" in _text(no_cookie)
    assert "允许本网站使用 Cookie" in _text(no_cookie)
    _assert_leads_back(_text(no_cookie))

    browser.get("/admin/login/")  # now the cookie is there, but the posted token is not
    stale = browser.post("/admin/login/", {"username": "x", "password": "y", "csrfmiddlewaretoken": "x" * 64})
    assert stale.status_code == 403
    assert "刷新页面后重新提交" in _text(stale)
    assert "Cookie" not in _text(stale)


def _section(html, app_label):
    """The index's module of one app, as HTML."""
    match = re.search(rf'<div class="app-{app_label} module.*?</table>', html, re.S)
    assert match, app_label
    return match.group(0)


def test_index_lists_apps_and_models_in_the_order_of_the_work(client, admin_user):
    client.force_login(admin_user)  # a superuser: every app, account administration included
    response = client.get("/admin/")
    apps = response.context["app_list"]
    assert [app["app_label"] for app in apps] == ["settlement", "alliances", "contracts", "auth"]
    settlement = [model["name"] for model in apps[0]["models"]]
    assert settlement[0] == "支付政策"
    for claims in ("门诊结算记录", "住院病例", "家庭医生服务记录"):
        assert settlement.index("支付政策") < settlement.index(claims)
        assert settlement.index("结算批次") < settlement.index(claims)
    # The rendered page and the sidebar say the same.
    section = _section(_text(response), "settlement")
    assert section.index("支付政策") < section.index("结算批次") < section.index("住院病例")
    sidebar = [app["app_label"] for app in response.context["available_apps"]]
    assert sidebar == ["settlement", "alliances", "contracts", "auth"]
    # The dashboard card of templates/admin/index.html is still first.
    html = _text(response)
    assert html.index("alliance-dashboard-module") < html.index("app-settlement")


def test_app_index_uses_the_same_order(client, make_user):
    client.force_login(make_user("city"))
    models = [model["name"] for model in client.get("/admin/settlement/").context["app_list"][0]["models"]]
    assert models[:2] == ["支付政策", "门诊人头标准"]


def test_unlisted_models_and_apps_keep_their_place_at_the_end():
    def app(label, *names):
        return {"app_label": label, "models": [{"object_name": name} for name in names]}

    ordered = order_app_list(
        [app("zz_new"), app("auth", "Group", "User"), app("settlement", "NewThing", "Job", "Another", "PaymentPolicy")],
    )
    assert [a["app_label"] for a in ordered] == ["settlement", "auth", "zz_new"]
    assert [m["object_name"] for m in ordered[0]["models"]] == ["PaymentPolicy", "Job", "NewThing", "Another"]


def test_greeting_shows_the_username_as_typed_and_the_role(client, hospital):
    client.force_login(hospital)
    html = _text(client.get("/admin/"))
    assert "欢迎，<strong>Wu_Finance01</strong>（医疗机构财务）" in html
    # The admin's stylesheet upper-cases #user-tools; the greeting undoes that for itself.
    assert re.search(r'<span class="portal-welcome" style="text-transform: none">欢迎，', html)


def test_greeting_prefers_the_full_name(client, hospital):
    hospital.last_name, hospital.first_name = "张", "晓梅"
    hospital.save()
    client.force_login(hospital)
    assert "欢迎，<strong>张晓梅</strong>（医疗机构财务）" in _text(client.get("/admin/"))
