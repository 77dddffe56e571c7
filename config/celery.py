import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Task modules live beside the services they call; a package without tasks.py is skipped.
app.autodiscover_tasks(
    lambda: ["alliances", "contracts", "settlement", "settlement.imports", "settlement.engine"]
)
