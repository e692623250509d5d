"""Realistic data at any size, inserted quickly: accounts and jobs shaped as the app writes them.

`seed(db, size, now)` fills an empty database with `size` jobs in batches of 1,000
(`insert_many`), about 10 s per 10,000 jobs on FerretDB. The documents carry the fields the app's
own writes leave (webapp/services/jobs/actions.py, attempts.py, recovery.py), with the statuses, dates
and owners of a service two to three months old:

- owners: `small` (10 jobs), `big` (10% of all: 10,000 at 100,000), `admin` (a few jobs),
  and 100 others sharing the rest;
- statuses: 79% COMPLETED, 3% FAILED, 2% CANCELLED (finished, created over the last
  RECENT_DAYS), 15% PENDING in the future (up to 60 days ahead), 0.5% RUNNING with a live
  lease, 0.5% IN_DOUBT; fields a status does not use are absent, never null (as `$unset` leaves
  them); finished jobs have their attempt history (some retried first) and `sent_at` or
  `last_error`;
- bodies of 200 to 2,000 characters, one to three recipients.

Nothing is due and no lease has run out, so the periodic sweep finds no work in these jobs
(the benchmark adds what it measures). Every account's password is ACCOUNT_PASSWORD.
"""

import random
from datetime import timedelta

from bson import ObjectId

ACCOUNT_PASSWORD = "bench-password-9"
SMALL_OWNER_JOBS = 10
BIG_OWNER_SHARE = 0.10
ADMIN_JOBS = 5
OTHER_OWNERS = 100
RECENT_DAYS = 85
BATCH = 1000
SENDER_DOMAIN = "mailjobs.bench"
STATUS_WEIGHTS = {"COMPLETED": 790, "FAILED": 30, "CANCELLED": 20, "PENDING": 150, "RUNNING": 5, "IN_DOUBT": 5}
LAST_ERRORS = [
    "550 5.1.1 <{to}>: Recipient address rejected: User unknown in virtual mailbox table",
    "554 5.7.1 Message rejected as spam",
    "no attempts left (5 of 5 used); last error: 451 4.3.0 Mail server temporarily rejected message",
]
WORDS = (
    "figures report weekly monthly invoice reminder meeting agenda notes review summary update "
    "schedule project budget release plan thanks regards attached please find below team"
).split()


class Owners:
    """The accounts jobs are seeded for: ids, emails, and how many jobs each got."""

    def __init__(self, admin, small, big, others):
        self.admin = admin
        self.small = small
        self.big = big
        self.others = others
        self.jobs = {}

    def email(self, owner_id):
        return self.emails[owner_id]


def _email(name):
    return f"{name}@{SENDER_DOMAIN}"


def seed_users(db, now, password_hash):
    """The admin, the small and big owners and OTHER_OWNERS more; returns Owners (emails by id too)."""
    names = ["admin", "small", "big"] + [f"user{n:03d}" for n in range(OTHER_OWNERS)]
    docs = []
    for n, name in enumerate(names):
        docs.append(
            {
                "_id": ObjectId(),
                "email": _email(name),
                "password_hash": password_hash,
                "role": "admin" if name == "admin" else "user",
                "timezone": "Europe/Paris" if n % 3 else "UTC",
                "created_at": now - timedelta(days=120) + timedelta(minutes=n),
                "session_generation": 0,
                "token_generation": 0,
                "disabled": False,
            }
        )
    db.users.insert_many(docs)
    ids = [doc["_id"] for doc in docs]
    owners = Owners(ids[0], ids[1], ids[2], ids[3:])
    owners.emails = {doc["_id"]: doc["email"] for doc in docs}
    return owners


def _owner_of(i, size, owners, rng):
    """Job i's owner: the small owner's jobs first, then the big owner's, then the others at random."""
    big = int(size * BIG_OWNER_SHARE)
    if i < SMALL_OWNER_JOBS:
        return owners.small
    if i < SMALL_OWNER_JOBS + big:
        return owners.big
    if i < SMALL_OWNER_JOBS + big + ADMIN_JOBS:
        return owners.admin
    return rng.choice(owners.others)


def _attempt(number, started, outcome, error=None):
    entry = {
        "number": number,
        "worker": "bench-host:4242:Worker-1",
        "started_at": started,
        "finished_at": started + timedelta(milliseconds=180),
        "outcome": outcome,
    }
    if error:
        entry["error"] = error
    return entry


def job_document(i, size, owners, now, rng, with_attempts_left=False):
    """One job as the app would have left it (see the module doc)."""
    status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
    owner = _owner_of(i, size, owners, rng)
    job_id = ObjectId()
    to = [f"{rng.choice(WORDS)}.{rng.randrange(10000)}@example.com" for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 8))).capitalize()
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(30, 300)))
    if status == "PENDING":
        created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
        send_at = now + timedelta(seconds=rng.uniform(120, 60 * 86400))
    else:
        created = now - timedelta(seconds=rng.uniform(3600, RECENT_DAYS * 86400))
        send_at = min(created + timedelta(seconds=rng.uniform(0, 2 * 86400)), now - timedelta(minutes=30))
    if status in ("RUNNING", "IN_DOUBT"):
        send_at = now - timedelta(seconds=rng.uniform(1, 20))
    created, send_at = (_ms(created), _ms(send_at))
    doc = {
        "_id": job_id,
        "owner_id": owner,
        "to": to,
        "subject": subject,
        "body": body,
        "send_at": send_at,
        "status": status,
        "attempts": 0,
        "max_attempts": 5,
        "next_attempt_at": send_at,
        "message_id": f"<job-{job_id}@{SENDER_DOMAIN}>",
        "created_at": created,
        "updated_at": created,
        "attempts_log": [],
    }
    if status == "COMPLETED":
        log = []
        if rng.random() < 0.05:  # sent at the second attempt
            log.append(_attempt(1, send_at, "retry", "451 4.7.1 Greylisted, try again later"))
        log.append(_attempt(len(log) + 1, send_at + timedelta(seconds=45 * len(log)), "sent"))
        doc.update(
            attempts=len(log), attempts_log=log, sent_at=log[-1]["finished_at"], updated_at=log[-1]["finished_at"]
        )
    elif status == "FAILED":
        error = rng.choice(LAST_ERRORS).format(to=to[0])
        tries = 5 if error.startswith("no attempts") else 1
        log = [
            _attempt(n + 1, send_at + timedelta(seconds=30 * 2**n), "retry" if n + 1 < tries else "failed", error)
            for n in range(tries)
        ]
        doc.update(attempts=tries, attempts_log=log, last_error=error, updated_at=log[-1]["finished_at"])
    elif status == "CANCELLED":
        doc["updated_at"] = _ms(created + (send_at - created) / 2)
    elif status == "RUNNING":
        doc.update(
            attempts=1,
            attempts_log=[{"worker": "bench-host:4242:Worker-2", "started_at": send_at, "outcome": "running"}],
            lease_token=f"bench{i}",
            lease_owner="bench-host:4242:Worker-2",
            lease_expires_at=_ms(now + timedelta(hours=6)),
            delivery_stage="claimed",
            updated_at=send_at,
        )
    elif status == "IN_DOUBT":
        error = "worker stopped responding while sending the message data; delivery is in doubt"
        doc.update(
            attempts=1,
            attempts_log=[_attempt(1, send_at, "in_doubt", error)],
            last_error=error,
            updated_at=send_at + timedelta(seconds=61),
        )
    if with_attempts_left:
        doc["attempts_left"] = doc["max_attempts"] - doc["attempts"]
    return doc


def _ms(moment):
    """BSON keeps milliseconds."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def seed(db, size, now, password_hash, seed_value=None, with_attempts_left=None):
    """Accounts, then `size` jobs in batches of BATCH; returns Owners (with `jobs`: how many each got).

    `with_attempts_left`: store the claim's counter (default: if this checkout's Job has it). A
    benchmark whose baseline code predates the field seeds without it, as a database written by
    that version and then upgraded holds (the claim adds it to such a job when it comes due).
    """
    from webapp.models import Job

    owners = seed_users(db, now, password_hash)
    rng = random.Random(seed_value if seed_value is not None else size)
    if with_attempts_left is None:
        with_attempts_left = "attempts_left" in Job._fields
    batch = []
    for i in range(size):
        doc = job_document(i, size, owners, now, rng, with_attempts_left)
        owners.jobs[doc["owner_id"]] = owners.jobs.get(doc["owner_id"], 0) + 1
        batch.append(doc)
        if len(batch) == BATCH:
            db.jobs.insert_many(batch, ordered=False)
            batch = []
    if batch:
        db.jobs.insert_many(batch, ordered=False)
    return owners
