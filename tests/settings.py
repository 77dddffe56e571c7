"""The portal's settings as a test run needs them, whatever the shell has set.

Production refuses to start without SECRET_KEY and serves HTTPS only; the test client and the
browser tests speak plain http to a throwaway database, so they get a key of their own and
PLAIN_HTTP. Set here, before config.settings reads them, and inherited by the worker processes
the tests start.
"""
import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-never-used-outside-the-test-suite-0123456789")
os.environ["PLAIN_HTTP"] = "1"

from config.settings import *  # noqa: E402,F401,F403
