"""`python manage.py create_user <username> --role <role> [--scope <code>] [--password <pw>]` (SPEC §5)."""
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import translation

from alliances.models import UserScope
from tests import factories

PASSWORD = "pw-Cmd-2026"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def places(county, other_county):
    return {
        "own": factories.institution(county=county, code="H33050200001", name="吴兴区人民医院"),
        "member": factories.institution(county=county, code="H33050200002", name="织里镇卫生院"),
        "outside": factories.institution(county=county, code="H33050200003", name="吴兴区民营医院"),
        "other": factories.institution(county=other_county, code="H33050300001", name="南浔区人民医院"),
    }


def _run(*args):
    call_command("create_user", *args, "--password", PASSWORD)
    return get_user_model().objects.get(username=args[0])


def _institutions_seen(client, username):
    assert client.login(username=username, password=PASSWORD)
    assert client.get("/admin/").status_code == 200
    page = client.get("/admin/alliances/institution/")
    assert page.status_code == 200
    html = page.content.decode()
    return {code for code in ("H33050200001", "H33050200002", "H33050200003", "H33050300001") if code in html}


@pytest.mark.parametrize(
    "args, role, group",
    [
        (["--role", "city"], "city", "市医保局"),
        (["--role", "auditor"], "auditor", "审计"),
        (["--role", "county", "--scope", "330502"], "county", "县区医保局"),
        (["--role", "health", "--scope", "330502"], "health", "卫健委"),
        (["--role", "hospital", "--scope", "H33050200001"], "hospital", "医疗机构财务"),
    ],
)
def test_each_role(places, args, role, group, capsys):
    user = _run("someone", *args)
    assert user.is_staff and user.is_active and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == [group]
    profile = UserScope.objects.get(user=user)
    assert profile.role == role
    assert profile.region_id == (places["own"].county_id if role in ("county", "health") else None)
    assert profile.institution_id == (places["own"].pk if role == "hospital" else None)
    assert "已创建用户 someone" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, seen",
    [
        (["--role", "city"], {"H33050200001", "H33050200002", "H33050200003", "H33050300001"}),
        (["--role", "auditor"], {"H33050200001", "H33050200002", "H33050200003", "H33050300001"}),
        (["--role", "county", "--scope", "330502"], {"H33050200001", "H33050200002", "H33050200003"}),
        (["--role", "health", "--scope", "330503"], {"H33050300001"}),
        (["--role", "hospital", "--scope", "H33050200002"], {"H33050200002"}),
    ],
)
def test_user_logs_in_at_once_and_sees_exactly_the_scope(places, client, args, seen):
    _run("newcomer", *args)
    assert _institutions_seen(client, "newcomer") == seen


def test_lead_hospital_user_sees_its_alliance(places, client):
    factories.alliance(lead=places["own"], members=[places["member"]])
    _run("lead", "--role", "hospital", "--scope", "H33050200001")
    assert _institutions_seen(client, "lead") == {"H33050200001", "H33050200002"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--role", "county", "--scope", "999999"], "区划代码“999999”不存在"),
        (["--role", "health", "--scope", "330599"], "区划代码“330599”不存在"),
        (["--role", "hospital", "--scope", "H33050299999"], "机构编码“H33050299999”不存在"),
        # A region code where an institution code is wanted is unknown too.
        (["--role", "hospital", "--scope", "330502"], "机构编码“330502”不存在"),
        (["--role", "county"], "县区医保局用户必须用 --scope 指定区划代码"),
        (["--role", "health"], "卫健委用户必须用 --scope 指定区划代码"),
        (["--role", "hospital"], "医疗机构用户必须用 --scope 指定机构编码"),
        (["--role", "city", "--scope", "330502"], "市医保局用户的范围是全市，不需要 --scope"),
        (["--role", "auditor", "--scope", "330502"], "审计用户的范围是全市，不需要 --scope"),
    ],
)
def test_refusals_are_chinese_and_create_nobody(places, args, message):
    with pytest.raises(CommandError) as info:
        call_command("create_user", "someone", *args, "--password", PASSWORD)
    assert str(info.value) == message
    assert not get_user_model().objects.filter(username="someone").exists()


def test_unknown_role_is_refused(places):
    with pytest.raises(CommandError):
        call_command("create_user", "someone", "--role", "superman")
    assert not get_user_model().objects.filter(username="someone").exists()


def test_running_again_changes_role_and_scope(places, client):
    _run("mover", "--role", "hospital", "--scope", "H33050200002")
    user = _run("mover", "--role", "county", "--scope", "330503")
    assert get_user_model().objects.filter(username="mover").count() == 1
    profile = UserScope.objects.get(user=user)
    assert (profile.role, profile.region.code, profile.institution_id) == ("county", "330503", None)
    assert list(user.groups.values_list("name", flat=True)) == ["县区医保局"]
    assert _institutions_seen(client, "mover") == {"H33050300001"}


def test_wrong_password_does_not_log_in(places, client):
    _run("guarded", "--role", "city")
    assert not client.login(username="guarded", password="not-the-password")


def test_county_user_cannot_delete(places, client):
    _run("clerk", "--role", "county", "--scope", "330502")
    assert client.login(username="clerk", password=PASSWORD)
    response = client.get(f"/admin/alliances/institution/{places['own'].pk}/delete/")
    assert response.status_code == 403


def test_without_password_a_new_user_gets_one_printed_and_can_log_in(places, client):
    out = StringIO()
    call_command("create_user", "fresh", "--role", "auditor", stdout=out)
    printed = [line for line in out.getvalue().splitlines() if line.startswith("初始密码：")]
    assert len(printed) == 1
    password = printed[0].removeprefix("初始密码：").split("（")[0]
    assert len(password) >= 12
    assert client.login(username="fresh", password=password)


def test_unknown_role_is_refused_in_chinese(places):
    with pytest.raises(CommandError, match="角色“boss”无效"):
        call_command("create_user", "someone", "--role", "boss")
    assert not get_user_model().objects.filter(username="someone").exists()


@pytest.mark.parametrize(
    "password, reasons",
    [
        ("123", ["密码长度太短。密码必须包含至少 8 个字符。", "这个密码太常见了。", "密码只包含数字。"]),
        ("password", ["这个密码太常见了。"]),
        ("someone2026", ["密码跟 用户名 太相似了。"]),
    ],
)
def test_weak_password_is_refused_in_chinese_on_one_line_and_creates_nobody(places, password, reasons):
    # Whatever language the caller has active, the refusal is the portal's language.
    with translation.override("en"), pytest.raises(CommandError) as info:
        call_command("create_user", "someone", "--role", "city", "--password", password)
    message = str(info.value)
    assert message == "密码不符合要求：" + "".join(reasons)
    assert "\n" not in message
    assert not get_user_model().objects.filter(username="someone").exists()
    assert not UserScope.objects.exists()


def test_weak_password_leaves_an_existing_user_as_it_was(places, client):
    _run("keeper", "--role", "hospital", "--scope", "H33050200002")
    with pytest.raises(CommandError, match="密码不符合要求"):
        call_command("create_user", "keeper", "--role", "county", "--scope", "330502", "--password", "12345678")
    profile = UserScope.objects.get(user__username="keeper")
    assert (profile.role, profile.institution.code) == ("hospital", "H33050200002")
    assert client.login(username="keeper", password=PASSWORD)


def test_weak_password_makes_the_command_exit_non_zero(places):
    from django.db import connection

    # The command as an operator runs it, on the test database: a non-zero exit and one Chinese line.
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    result = subprocess.run(
        [sys.executable, "manage.py", "create_user", "u", "--role", "city", "--password", "123"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "CommandError: 密码不符合要求：密码长度太短。密码必须包含至少 8 个字符。这个密码太常见了。密码只包含数字。"
    )
    assert not get_user_model().objects.filter(username="u").exists()
