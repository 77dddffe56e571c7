import pytest

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


@pytest.fixture(autouse=True)
def tasks_in_process(settings, tmp_path):
    """Run tasks in-process unless a test asks for the real worker; keep uploads in tmp."""
    from config.celery import app as celery_app

    settings.MEDIA_ROOT = str(tmp_path / "media")
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


from tests.worker import celery_worker_process  # noqa: E402,F401  (fixture)
