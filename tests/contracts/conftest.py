import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Many tests here create users and log in; the production hasher costs ~0.3 s per hash.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
