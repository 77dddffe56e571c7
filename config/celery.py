import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Task modules live beside the services they call; a package without tasks.py is skipped.
app.autodiscover_tasks(
    lambda: ["alliances", "contracts", "settlement", "settlement.imports", "settlement.engine", "settlement.audit",
             "settlement.benefits", "settlement.kpi_aggregates", "settlement.analysis"]
)


# Jobs of a worker killed hard would look busy until the broker's visibility timeout; see
# settlement/jobs.py for how a starting or running worker notices them.
@signals.worker_init.connect
def _sweep_dead_incarnation(sender=None, **kwargs):
    # worker_init comes before the consumer starts: nothing of this incarnation is held yet.
    import django

    django.setup()
    from settlement import jobs

    jobs.worker_starting(sender.hostname)


@signals.worker_ready.connect
def _start_job_heartbeat(sender=None, **kwargs):
    from settlement import jobs

    jobs.start_monitor(sender.hostname)


@signals.worker_shutdown.connect
def _stop_job_heartbeat(**kwargs):
    from settlement import jobs

    jobs.stop_monitor()
