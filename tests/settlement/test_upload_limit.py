"""An upload over IMPORT_MAX_FILE_BYTES is refused while it arrives (config/uploads.py): the import
page says so in Chinese, and nothing of the file is kept, neither as a temporary file nor in MEDIA."""
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError

from config.uploads import too_large_message
from settlement.imports.errors import ImportRejected
from settlement.imports.services import submit_import
from settlement.models import Job

IMPORT_URL = "/admin/settlement/outpatientclaim/import/"


def _csv(size):
    header = "流水号,身份证号\n".encode()
    return header + b"x" * (size - len(header))


def _files_in(folder):
    return sorted(p for p in Path(folder).rglob("*") if p.is_file())


@pytest.fixture
def limits(settings, tmp_path):
    """A 1000-byte limit, and every upload spooled to a temporary folder the test can look into."""
    settings.IMPORT_MAX_FILE_BYTES = 1000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # the temporary-file handler takes every upload
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-tmp")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    return settings


@pytest.fixture
def uploader(client, make_user, db):
    client.force_login(make_user("city"))
    return client


def _post(client, content, name="claims.csv"):
    return client.post(IMPORT_URL, {"file": SimpleUploadedFile(name, content, "text/csv"), "land_good_rows": "on"})


@pytest.mark.parametrize(
    "size, limit",
    [
        (1001, 1000),  # one byte over, in the first chunk
        (300_000, 1000),  # Content-Length alone shows it is too large
        (150_000, 100_000),  # found over the limit in the second 64 KB chunk
    ],
)
def test_too_large_upload_is_refused_on_the_form_and_nothing_is_kept(limits, uploader, size, limit):
    limits.IMPORT_MAX_FILE_BYTES = limit
    response = _post(uploader, _csv(size))
    assert response.status_code == 200  # the form again, not a job
    form = response.context["form"]
    assert form.errors["file"] == [too_large_message()]
    assert too_large_message() in response.content.decode()
    # Fields after the file still arrive: the form comes back as the user filled it in.
    assert form.data.get("land_good_rows") == "on"
    assert not Job.objects.exists()
    assert _files_in(limits.FILE_UPLOAD_TEMP_DIR) == []
    assert _files_in(limits.MEDIA_ROOT) == []


def test_message_names_the_limit(limits):
    assert too_large_message() == "文件过大（上限为1000 字节），未保存"
    limits.IMPORT_MAX_FILE_BYTES = 200 * 1024 * 1024
    assert too_large_message() == "文件过大（上限为200 MB），未保存"


def test_upload_at_the_limit_becomes_a_job(limits, uploader):
    response = _post(uploader, _csv(1000))
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/import/jobs/{job.pk}/")
    assert Path(job.input_file.path).read_bytes() == _csv(1000)
    assert _files_in(limits.MEDIA_ROOT) == [Path(job.input_file.path)]


def test_limit_is_read_at_request_time(limits, uploader):
    assert _post(uploader, _csv(1500)).status_code == 200
    limits.IMPORT_MAX_FILE_BYTES = 2000
    assert _post(uploader, _csv(1500)).status_code == 302


def test_submit_import_refuses_a_file_over_the_limit_before_saving_it(limits, make_user):
    with pytest.raises(ImportRejected) as info:
        submit_import("outpatient_claims", SimpleUploadedFile("claims.csv", _csv(1001)), make_user("city"))
    assert info.value.message == "文件过大（上限为1000 字节），未保存"
    assert not Job.objects.exists()
    assert _files_in(limits.MEDIA_ROOT) == []


@pytest.mark.django_db(transaction=True)
def test_job_that_cannot_be_committed_takes_its_saved_file_back(settings):
    # The submitter's account is deleted while the upload is under way: the job row's user no longer
    # exists, so the commit fails (PostgreSQL checks the foreign key then), after the file was saved.
    gone = get_user_model().objects.create_superuser("gone", password="pw-Gone-2026")
    get_user_model().objects.filter(pk=gone.pk).delete()
    with pytest.raises(IntegrityError):
        submit_import("outpatient_claims", SimpleUploadedFile("claims.csv", _csv(500)), gone)
    assert not Job.objects.exists()
    assert _files_in(settings.MEDIA_ROOT) == []
