"""The password hasher: Argon2id at a cost chosen by measurement on the portal's 2-core servers.

A login POST was ~90% PBKDF2 (Django 5.2: 1,000,000 SHA-256 iterations, ~0.25–0.4 s of one core,
~1.1 s each when four logins arrive at once). Argon2id is memory-hard, so a GPU or ASIC attacker pays
for memory per guess, which PBKDF2 never makes them do: at 32 MiB and 2 passes it is above OWASP's
recommended minimum (19 MiB, t=2, p=1, which OWASP rates as strong as PBKDF2-SHA256 at 600,000) and
costs the server ~60–100 ms. Django's own Argon2 defaults (100 MiB, t=2, 8 lanes) cost as much as the
PBKDF2 they would replace here. One lane: two cores gain nothing from more threads per login, and
logins arriving together then share the cores instead of queueing behind each other's threads.

The parameters live in each stored hash, so changing them later re-hashes a password at its next
login (must_update), as does a PBKDF2 hash from before (settings.PASSWORD_HASHERS keeps PBKDF2).
"""
from django.contrib.auth.hashers import Argon2PasswordHasher


class PortalArgon2PasswordHasher(Argon2PasswordHasher):
    # Same algorithm name ("argon2") as Django's, so hashes stay readable by Django's own hasher.
    time_cost = 2
    memory_cost = 32 * 1024  # KiB
    parallelism = 1
