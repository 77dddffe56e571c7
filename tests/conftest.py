import pytest
from django.test import Client, RequestFactory

from alliances.services import create_user
from tests import factories


@pytest.fixture
def county(db):
    return factories.region("330502", "吴兴区")


@pytest.fixture
def other_county(db):
    return factories.region("330503", "南浔区")


@pytest.fixture
def make_user(db):
    """make_user(role, scope_code=None) → a staff user with that role, password "pw-Test-2026"."""
    counter = iter(range(1, 10_000))

    def make(role, scope_code=None, username=None):
        return create_user(username or f"{role}{next(counter)}", role, scope_code, "pw-Test-2026")

    return make


class _LoginClient(Client):
    def login(self, **credentials):
        # django-axes, first in AUTHENTICATION_BACKENDS, refuses authenticate() without a request;
        # give it the one the login page would, so it counts attempts here as it does there.
        credentials.setdefault("request", RequestFactory().post("/admin/login/"))
        return super().login(**credentials)


@pytest.fixture
def client():
    """pytest-django's client, whose login() works with axes switched on."""
    return _LoginClient()


@pytest.fixture(autouse=True)
def tasks_in_process(settings, tmp_path):
    """Run tasks in-process unless a test asks for the real worker; keep uploads in tmp."""
    from config.celery import app as celery_app

    settings.MEDIA_ROOT = str(tmp_path / "media")
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


from tests.worker import celery_worker_process, worker_factory  # noqa: E402,F401  (fixtures)
