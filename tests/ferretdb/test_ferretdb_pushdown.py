"""FerretDB's SQLite pushdown (patches 03 and 04) answers exactly as the handler alone does.

Two FerretDB servers from the same binary (var/bin/ferretdb, or FERRETDB_BIN) get the same
documents, written in the same order. One runs with `--test-disable-pushdown`: its handler
reads every document and filters, sorts, skips and counts in Go, as the unpatched build did.
The other hands filters, sorts, limits and counts to SQLite. Every answer (documents as raw
BSON bytes, their order, counts, groups, which document a single update or delete picks) must
be identical, for documents of every type, missing fields, arrays, nulls and equal sort keys.

The app's own queries must, in addition, run through an index: `explain` shows SQLite's plan.
An unpatched build fails that test (no `filterExact`, a full scan).
"""

import contextlib
import datetime
import os
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import mongoengine
import pymongo
import pytest
from bson import Int64
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import monitoring

from tests.support.ferretdb import FerretDBServer
from tests.support.pushdown import CLEAN_INDEXES
from tests.support.pushdown import EDGE_VALUES
from tests.support.pushdown import INDEXES
from tests.support.pushdown import OWNERS
from tests.support.pushdown import SAFE
from tests.support.pushdown import UNSAFE
from tests.support.pushdown import Pair
from tests.support.pushdown import as_explained
from tests.support.pushdown import at
from tests.support.pushdown import check_reads
from tests.support.pushdown import check_writes
from tests.support.pushdown import clean_docs
from tests.support.pushdown import clean_pools
from tests.support.pushdown import edge_filters
from tests.support.pushdown import mixed_docs
from tests.support.pushdown import mixed_pools
from tests.support.pushdown import plan_problems
from tests.support.pushdown import random_filter
from tests.support.pushdown import random_sort
from tests.support.pushdown import raw
from tests.support.pushdown import string_queries

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("FERRETDB_BIN") or str(PROJECT_ROOT / "var" / "bin" / "ferretdb")
SEED = int(os.environ.get("PUSHDOWN_SEED", "20250101"))


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(pushdown, reference): two servers, same binary; the reference has pushdown disabled."""
    base = tmp_path_factory.mktemp("pushdown")
    pushdown = FerretDBServer(BINARY, str(base / "pushdown"))
    reference = FerretDBServer(BINARY, str(base / "reference"), extra_args=["--test-disable-pushdown"])
    pushdown.start()
    reference.start()
    clients = [pymongo.MongoClient(s.uri, document_class=RawBSONDocument) for s in (pushdown, reference)]
    yield SimpleNamespace(servers=(pushdown, reference), clients=clients, base=base)
    for client in clients:
        client.close()
    pushdown.stop()
    reference.stop()


def test_mixed_types_same_answers(servers):
    """Anything in any field: pushed or not, every answer is the handler's."""
    rng = random.Random(SEED)
    pair = Pair(servers.clients, "mixed")
    docs = mixed_docs(rng, 150)
    # make sure every edge value is stored somewhere, in every field
    for i, value in enumerate(EDGE_VALUES):
        docs.append({"_id": f"edge-{i}", "s": value, "d": value, "o": value, "n": value, "b": value})
    pair.setup(docs, INDEXES)
    for flt in edge_filters():
        pair.same(lambda c: raw(c.find(flt, sort=[("_id", 1)])), f"find {flt}")
        pair.same(lambda c: c.count_documents(flt), f"count_documents {flt}")
    pools = mixed_pools()
    for i in range(60):
        flt = random_filter(rng, pools)
        check_reads(pair, rng, flt, ["s", "d", "o", "n", "b", "_id"], ["s", "d", "o", "b"])
        if i % 10 == 0:
            check_writes(pair, rng, flt, ["s", "d", "_id"], i)


def test_app_shaped_documents_same_answers_and_pushed(servers):
    """One type per field, as the app writes: answers identical, and most of them come from SQLite."""
    rng = random.Random(SEED + 1)
    pair = Pair(servers.clients, "clean")
    docs = clean_docs(rng, 200)
    pair.setup(docs, CLEAN_INDEXES)
    pools = clean_pools(docs)
    pushed = {"filterExact": 0, "sortPushdown": 0, "countPushdown": 0}
    for i in range(80):
        flt = random_filter(rng, pools)
        check_reads(
            pair,
            rng,
            flt,
            ["created", "due", "owner", "status", "flag", "tag", "_id"],
            ["status", "owner", "flag", "tag"],
        )
        sort = random_sort(rng, ["created", "due", "status", "_id"])
        plan = pair.explain({"filter": flt, "sort": dict(sort), "limit": Int64(20)})
        counting = pair.pushed.database.command("explain", {"count": "clean", "query": flt})
        pushed["filterExact"] += plan["filterExact"]
        pushed["sortPushdown"] += plan["sortPushdown"]
        pushed["countPushdown"] += counting["countPushdown"]
        if i % 12 == 0:
            check_writes(pair, rng, flt, ["created", "due", "_id"], i)
    # the comparison above proves nothing if nothing was pushed
    assert pushed["filterExact"] > 40 and pushed["sortPushdown"] > 20 and pushed["countPushdown"] > 40, pushed


def test_odd_values_written_later_stop_the_shortcuts(servers):
    """A value SQLite would compare or order differently, written after the census was taken,
    turns exact pushdown off for that field at once; answers stay identical throughout."""
    rng = random.Random(SEED + 2)
    pair = Pair(servers.clients, "tainted")
    docs = clean_docs(rng, 120)
    pair.setup(docs, CLEAN_INDEXES)
    status_sort = {"filter": {"status": "PENDING"}, "sort": {"created": -1}, "limit": Int64(5)}
    assert pair.explain(status_sort)["sortPushdown"]
    taints = [
        {"_id": ObjectId(), "owner": str(OWNERS[0]), "status": "PENDING", "created": at(3)},
        {"_id": ObjectId(), "owner": OWNERS[1], "status": ["PENDING", "X"], "created": at(4)},
        {"_id": ObjectId(), "owner": OWNERS[2], "status": "PENDING", "created": datetime.datetime(1999, 1, 1)},
        {"_id": ObjectId(), "owner": OWNERS[3], "status": "PENDING", "created": None},
        {"_id": ObjectId(), "owner": OWNERS[0], "status": "a b", "created": Int64(1_741_000_000_000)},
        {"_id": ObjectId(), "owner": OWNERS[1], "status": 5, "due": "soon"},
    ]
    pools = clean_pools(docs)
    pools["status"] = pools["status"] + [["PENDING", "X"], "a b", 5]
    pools["created"] = pools["created"] + [datetime.datetime(1999, 1, 1), None, Int64(1_741_000_000_000)]
    for taint in taints:
        pair.both(lambda c: c.insert_one(taint))
        for i in range(12):
            flt = random_filter(rng, pools)
            check_reads(pair, rng, flt, ["created", "due", "owner", "status", "_id"], ["status", "owner"])
        check_writes(pair, rng, random_filter(rng, pools), ["created", "_id"], str(taint["_id"]))
    # a date before 2001 and a null in `created`: SQLite's order is no longer BSON's
    assert not pair.explain(status_sort)["sortPushdown"]


def test_strings_compare_as_bson(servers):
    """Strings whose JSON text orders differently ("a b" < "a" as text, "a<b" written "a\\u003cb")
    are never ranged or sorted by SQLite, whether they were there before the first query or came later."""
    rng = random.Random(SEED + 4)
    sort_on_s = {"filter": {}, "sort": {"s": 1}, "limit": Int64(3)}
    # odd strings stored before anything asked about `s`: the table scan must see them
    scanned = Pair(servers.clients, "strings_scanned")
    scanned.setup([{"s": rng.choice(SAFE + UNSAFE), "t": rng.choice(SAFE)} for _ in range(80)], [[("s", 1)]])
    string_queries(scanned)
    assert not scanned.explain(sort_on_s)["sortPushdown"]
    assert scanned.explain({"filter": {}, "sort": {"t": 1}, "limit": Int64(3)})["sortPushdown"]
    # odd strings written after: each write must tell
    written = Pair(servers.clients, "strings_written")
    written.setup([{"s": rng.choice(SAFE), "t": rng.choice(SAFE)} for _ in range(60)], [[("s", 1)]])
    string_queries(written)
    assert written.explain(sort_on_s)["sortPushdown"]
    odd = [{"_id": ObjectId(), "s": v, "t": "x"} for v in UNSAFE]
    written.both(lambda c: c.insert_many(odd))
    string_queries(written)
    assert not written.explain(sort_on_s)["sortPushdown"]


def test_existing_data_directory_gets_the_same_answers(servers, tmp_path):
    """A data directory written without pushdown (as by an unpatched build) is read correctly:
    the kinds of its values are taken from the table itself, not from writes seen."""
    rng = random.Random(SEED + 3)
    _, reference = servers.servers
    name = "reopened"
    docs = mixed_docs(rng, 100) + clean_docs(rng, 100)
    coll = servers.clients[1].pushdown[name]
    coll.drop()
    for keys in INDEXES:
        coll.create_index(keys)
    coll.insert_many(docs)
    reference.stop()
    try:
        shutil.copytree(reference.data_dir, tmp_path / "copy", ignore=shutil.ignore_patterns("*.log"))
    finally:
        reference.start()
    with FerretDBServer(BINARY, str(tmp_path / "copy")) as reopened:
        client = pymongo.MongoClient(reopened.uri, document_class=RawBSONDocument)
        try:
            pair = Pair([client, servers.clients[1]], name)
            pools = mixed_pools() | clean_pools()
            for _ in range(40):
                flt = random_filter(rng, pools)
                check_reads(pair, rng, flt, ["s", "d", "created", "status", "_id"], ["s", "d", "status"])
        finally:
            client.close()


# --- the app's own queries go through an index ----------------------------------------------


class CommandLog(monitoring.CommandListener):
    """The read and write commands the app sends, as sent."""

    NAMES = {"find", "aggregate", "count", "update", "delete", "findAndModify"}

    def __init__(self):
        self.commands = []

    def started(self, event):
        if event.command_name in self.NAMES:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass


# App queries no declared index covers: none (the admin's user list has its (created_at, _id) index).
UNINDEXED = []


def test_app_queries_use_an_index(servers):
    """Every query the services send is answered by SQLite through an index, exactly.

    Fails on an unpatched build: its explain has no `filterExact` and shows full scans.
    """
    from webapp.models import Job
    from webapp.models import JobStatus
    from webapp.models import RevokedToken
    from webapp.models import SweepTurn
    from webapp.models import User
    from webapp.models.user import Role
    from webapp.services.accounts import users as accounts  # `users` is the list made below
    from webapp.services.delivery import attempts
    from webapp.services.delivery import recovery
    from webapp.services.jobs import actions

    log = CommandLog()
    pushdown, _ = servers.servers
    mongoengine.connect(
        alias="pushdown-test",
        host=pushdown.uri + "mailjobs_pushdown",
        uuidRepresentation="standard",
        event_listeners=[log],
    )
    models = (Job, User, RevokedToken, SweepTurn)
    try:
        with models_on("pushdown-test", models):
            for model in models:
                model.drop_collection()
                model.ensure_indexes()
            users = [
                User(email=f"u{i}@example.com", password_hash="x", role=Role.ADMIN if i == 0 else Role.USER)
                for i in range(3)
            ]
            for user in users:
                user.save()
            now = recovery.utcnow()
            for i in range(30):
                Job(
                    owner_id=users[i % 2].id,
                    to=["a@example.com"],
                    subject="s",
                    body="b",
                    send_at=now,
                    next_attempt_at=now,
                    message_id=f"<{i}@x>",
                    status=JobStatus.ALL[i % len(JobStatus.ALL)],
                ).save()
            # A logout as earlier versions kept it (a RevokedToken), and one on the account.
            RevokedToken(jti="f00d-1", expires_at=now + datetime.timedelta(hours=1)).save()
            accounts.revoke_token(users[1], "abc-1", now + datetime.timedelta(hours=1), now)
            job = Job.objects(status=JobStatus.PENDING).first()
            log.commands.clear()

            # what the pages, the API, the workers and the sweep ask
            actions.list_jobs(owner_id=users[0].id, page=2, per_page=5)
            actions.list_jobs(owner_id=users[0].id, status=JobStatus.PENDING)
            actions.list_jobs()
            actions.list_jobs(status=JobStatus.COMPLETED)
            actions.status_counts()
            actions.status_counts(owner_id=users[1].id)
            actions.count_by_owner([u.id for u in users])
            actions.get_job(str(job.id), owner_id=job.owner_id)
            actions.cancel_job(str(job.id))
            claimed = attempts.claim(Job.objects(status=JobStatus.PENDING).first().id, "w1", 30)[0]
            attempts.renew_leases([(claimed, 30, False)])
            attempts.still_holds(claimed)
            attempts.enter_data_stage(claimed, 30)
            attempts.mark_sent(claimed)
            recovery.recover_expired_leases(SimpleNamespace(in_doubt_policy="resend"), now=now)
            recovery.due_unqueued_jobs(now=now)
            recovery.next_attempt_of(job.id)
            recovery.take_sweep_turn("sweep", "me", 5)
            accounts.find_user_by_email("u1@example.com")
            accounts.get_user(str(users[1].id))
            accounts.emails_by_id([u.id for u in users])
            accounts.count_admins()
            accounts.list_users(1, 20)
            # a token from before revocations moved to the account: looked up in revoked_tokens
            accounts.is_token_revoked(None, {"jti": "f00d-1"})
            accounts.purge_expired_revocations(now)

            sent = list(log.commands)
            assert len(sent) > 25
            assert_each_uses_an_index(pushdown.uri, sent)
    finally:
        mongoengine.disconnect(alias="pushdown-test")


def test_scheduling_queries_use_an_index(servers):
    """The queries scheduling adds (issue 8) are answered through an index too: the expiry sweep,
    the materializer's pass, cancelling a schedule's occurrences, the schedule lists, the bulk
    actions on the overdue backlog."""
    from bson import ObjectId

    from webapp.models import Job
    from webapp.models import JobStatus
    from webapp.models import Schedule
    from webapp.models import User
    from webapp.services.delivery import expiry
    from webapp.services.jobs import bulk
    from webapp.services.recurring import occurrences
    from webapp.services.recurring import schedules
    from webapp.timeutil import utcnow

    log = CommandLog()
    pushdown, _ = servers.servers
    mongoengine.connect(
        alias="pushdown-sched",
        host=pushdown.uri + "mailjobs_pushdown",
        uuidRepresentation="standard",
        event_listeners=[log],
    )
    models = (Job, Schedule, User)
    try:
        with models_on("pushdown-sched", models):
            for model in models:
                model.drop_collection()
                model.ensure_indexes()
            now = utcnow()
            owner = ObjectId()
            schedule_ids = []
            for i in range(6):
                schedule = Schedule(
                    owner_id=owner,
                    to=["a@example.com"],
                    subject="s",
                    body="b",
                    cron="* * * * *",
                    timezone="UTC",
                    cursor_at=now,
                    planned=[],
                    due_at=now + datetime.timedelta(minutes=i),
                )
                schedule.save()
                schedule_ids.append(schedule.id)
            for i in range(30):
                Job(
                    owner_id=owner,
                    to=["a@example.com"],
                    subject="s",
                    body="b",
                    send_at=now,
                    next_attempt_at=now,
                    message_id=f"<s{i}@x>",
                    status=JobStatus.ALL[i % len(JobStatus.ALL)],
                    expires_at=now + datetime.timedelta(hours=1),
                    schedule_id=schedule_ids[i % 6],
                    occurrence_at=now,
                ).save()
            log.commands.clear()

            settings = occurrences.MaterializeSettings()
            expiry.expire_pending(now)
            occurrences.materialize_due(now - datetime.timedelta(minutes=1), settings)  # nothing due
            schedules.cancel_pending_occurrences(schedule_ids[0], now)
            schedules.list_schedules(owner_id=owner)
            schedules.list_schedules()
            bulk.apply("cancel", bulk.selection(owner_id=owner, overdue_before=now), now)
            bulk.apply("send_now", bulk.selection(overdue_before=now + datetime.timedelta(hours=1)), now)

            sent = list(log.commands)
            assert len(sent) >= 8
            assert_each_uses_an_index(pushdown.uri, sent)
    finally:
        mongoengine.disconnect(alias="pushdown-sched")


def assert_each_uses_an_index(uri, sent):
    """Every (name, command) the app sent, explained on the pushdown server, searches an index."""
    problems = []
    for name, command in sent:
        for explained in as_explained(name, command):
            problems += plan_problems(uri, "mailjobs_pushdown", explained, UNINDEXED)
    assert not problems, "\n".join(problems)


@contextlib.contextmanager
def models_on(alias, models):
    """Point the models at another connection for a while (mongoengine's switch_db needs the
    default connection to exist, which it does not when this module runs alone)."""
    before = [model._meta.get("db_alias", mongoengine.DEFAULT_CONNECTION_NAME) for model in models]
    for model in models:
        model._meta["db_alias"] = alias
        model._collection = None
    try:
        yield
    finally:
        for model, original in zip(models, before):
            model._meta["db_alias"] = original
            model._collection = None
