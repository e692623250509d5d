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
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import mongoengine
import pymongo
import pytest
from bson import Binary
from bson import Int64
from bson import ObjectId
from bson import Regex
from bson import Timestamp
from bson.raw_bson import RawBSONDocument
from pymongo import monitoring

from tests.support.ferretdb import FerretDBServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BINARY = os.environ.get("FERRETDB_BIN") or str(PROJECT_ROOT / "var" / "bin" / "ferretdb")
SEED = int(os.environ.get("PUSHDOWN_SEED", "20250101"))

OWNERS = [ObjectId() for _ in range(4)]
STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED"]
T0 = datetime.datetime(2025, 3, 1, 12, 0, 0)


def at(minutes):
    return T0 + datetime.timedelta(minutes=minutes)


# Values that look alike to SQLite (an ObjectId and its hex string, a date and a long, 5 and
# 5.0 and -0.0), strings whose JSON text does not order like them (escapes, bytes below '#'),
# dates outside 2001..2286 (their text has another length), arrays, documents, other types.
PLAIN_STRINGS = ["PENDING", "RUNNING", "alpha", "alpha2", "b", "ba", "Zed", "é", ""]
ODD_STRINGS = ["a b", "a!", "a<b", 'q"uote', "back\\slash", "tab\there", "a&b"]
NUMBERS = [0, 1, -1, 5, 100, Int64(5), Int64(2**40), 5.0, -0.0, 0.5, 1e-7, 1e21, float(2**53 + 2), 12345678901234]
DATES_IN_BAND = [at(0), at(1), at(1), at(30), at(600)]
DATES_OUT_OF_BAND = [datetime.datetime(1990, 5, 1), datetime.datetime(1969, 7, 20), datetime.datetime(2300, 1, 1)]
OTHERS = [True, False, None, [], ["alpha", 5], [None], [at(1), at(2)], {"a": 1}, Binary(b"x"), Regex("^a"),
          Timestamp(5, 1), OWNERS[0], OWNERS[1]]
MISSING = object()


def pool():
    """Every kind of value a mixed field draws from."""
    return (PLAIN_STRINGS + ODD_STRINGS + NUMBERS + DATES_IN_BAND + DATES_OUT_OF_BAND + OTHERS
            + [str(OWNERS[0]), MISSING, MISSING])


def mixed_docs(rng, n):
    """Documents whose fields hold anything."""
    values = pool()
    docs = []
    for i in range(n):
        doc = {"_id": rng.choice([ObjectId(), ObjectId(), f"id-{i}", i, str(ObjectId())])}
        for field in ("s", "d", "o", "n", "b"):
            value = rng.choice(values)
            if value is not MISSING:
                doc[field] = value
        docs.append(doc)
    return docs


def clean_docs(rng, n):
    """Documents shaped like the app's jobs: one type per field, many equal sort keys."""
    docs = []
    for i in range(n):
        doc = {
            "_id": ObjectId(),
            "owner": rng.choice(OWNERS),
            "status": rng.choice(STATUSES),
            "created": at(rng.randrange(40)),
            "flag": rng.choice([True, False]),
            "n": rng.randrange(5),
        }
        if rng.random() < 0.8:
            doc["due"] = at(rng.randrange(-20, 20))
        tag = rng.choice(["x", "y", None, MISSING])
        if tag is not MISSING:
            doc["tag"] = tag  # strings, null and missing: one group for null and missing
        docs.append(doc)
    return docs


def raw(docs):
    return [doc.raw for doc in docs]


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


class Pair:
    """One collection on both servers; `both(op)` runs op on each and returns the two answers."""

    def __init__(self, clients, name):
        self.name = name
        self.colls = [client.pushdown[name] for client in clients]
        self.pushed = self.colls[0]

    def both(self, op):
        """Run op on each server; an error is an answer too (both must fail alike)."""
        answers = []
        for coll in self.colls:
            try:
                answers.append(op(coll))
            except pymongo.errors.OperationFailure as error:
                answers.append(("error", error.code, str(error)))
        return answers

    def same(self, op, what):
        got, want = self.both(op)
        assert got == want, f"{self.name}: {what}"
        return got

    def setup(self, docs, indexes):
        for coll in self.colls:
            coll.drop()
            for keys in indexes:
                coll.create_index(keys)
            for start in range(0, len(docs), 100):
                coll.insert_many(docs[start:start + 100], ordered=True)

    def explain(self, find):
        """FerretDB's explain of a find on the pushdown server (it shows SQLite's plan)."""
        return self.pushed.database.command("explain", {"find": self.name, **find})


# --- random queries ---------------------------------------------------------------------------

OPS = ["eq", "$eq", "$in", "$ne", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"]


def random_condition(rng, values):
    op = rng.choice(OPS)
    value = rng.choice(values)
    if value is MISSING:
        value = None
    if op == "eq":
        return value
    if op in ("$in", "$nin"):
        chosen = [rng.choice(values) for _ in range(rng.randrange(0, 4))]
        return {op: [None if v is MISSING else v for v in chosen]}
    if op == "$exists":
        return {op: rng.choice([True, False])}
    if op in ("$gt", "$gte", "$lt", "$lte") and rng.random() < 0.5:
        # a range with both ends, as the app's windows are
        other = rng.choice(values)
        return {op: value, rng.choice(["$lt", "$lte"] if op in ("$gt", "$gte") else ["$gt", "$gte"]):
                None if other is MISSING else other}
    return {op: value}


def random_filter(rng, fields):
    """A conjunction of 0-3 conditions, each on a field with values drawn from its pool."""
    names = rng.sample(sorted(fields), rng.randrange(0, min(3, len(fields)) + 1))
    conditions = [{name: random_condition(rng, fields[name])} for name in names]
    if len(conditions) > 1 and rng.random() < 0.2:
        return {"$and": conditions}
    merged = {}
    for condition in conditions:
        merged.update(condition)
    if rng.random() < 0.05:
        merged["$or"] = [{"_id": {"$exists": True}}]  # not pushed: the original path
    if rng.random() < 0.05:
        merged["x.y"] = 1  # dot notation: not pushed, makes the filter inexact
    return merged


def random_sort(rng, sort_fields):
    keys = rng.sample(sort_fields, rng.randrange(1, 3))
    sort = [(key, rng.choice([1, -1])) for key in keys]
    if rng.random() < 0.3 and "_id" not in keys:
        sort.append(("_id", rng.choice([1, -1])))
    return sort


def check_reads(pair, rng, flt, sort_fields, group_fields):
    """Every read the app makes, with this filter, on both servers."""
    pair.same(lambda c: raw(c.find(flt)), f"find {flt}")
    sort = random_sort(rng, sort_fields)
    skip, limit = rng.choice([0, 0, 1, 3, 15]), rng.choice([0, 1, 2, 5, 20])
    pair.same(lambda c: raw(c.find(flt, sort=sort, skip=skip, limit=limit)),
              f"find {flt} sort {sort} skip {skip} limit {limit}")
    pair.same(lambda c: raw(c.find(flt, {"_id": 1}, sort=sort[:1], limit=3)), f"find ids {flt} sort {sort[:1]}")
    pair.same(lambda c: raw(c.find(flt, sort=sort, batch_size=2)), f"find {flt} sort {sort} in batches of 2")
    field = rng.choice(group_fields)
    pair.same(lambda c: c.distinct(field, flt), f"distinct {field} {flt}")
    pair.same(lambda c: c.count_documents(flt), f"count_documents {flt}")
    if skip or limit:
        kwargs = {"skip": skip} | ({"limit": limit} if limit else {})
        pair.same(lambda c: c.count_documents(flt, **kwargs), f"count_documents {flt} {kwargs}")
    pair.same(lambda c: c.database.command("count", c.name, query=flt)["n"], f"count {flt}")
    if skip or limit:
        pair.same(lambda c: c.database.command("count", c.name, query=flt, skip=skip, limit=limit)["n"],
                  f"count {flt} skip {skip} limit {limit}")
    field = rng.choice(group_fields)
    pipeline = [{"$match": flt}, {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
    pair.same(lambda c: raw(c.aggregate(pipeline)), f"group {pipeline}")
    one = rng.choice([1, Int64(1)])
    pipeline = [{"$match": flt}, {"$group": {"_id": rng.choice([None, 1, "all"]), "n": {"$sum": one}}},
                {"$project": {"n": 1}}]
    pair.same(lambda c: raw(c.aggregate(pipeline)), f"constant group {pipeline}")
    if rng.random() < 0.2:
        # two accumulators: FerretDB sums the second to 0; not pushed, same answer
        pipeline = [{"$match": flt}, {"$group": {"_id": 1, "n": {"$sum": 1}, "m": {"$sum": 1}}}]
        pair.same(lambda c: raw(c.aggregate(pipeline)), f"two accumulators {pipeline}")


def check_writes(pair, rng, flt, sort_fields, tag):
    """Which document a single write picks, and how many a multi-write touches."""
    sort = random_sort(rng, sort_fields)
    pair.same(lambda c: getattr(c.find_one_and_update(flt, {"$set": {"touched": tag}}, sort=sort), "raw", None),
              f"find_one_and_update {flt} sort {sort}")
    pair.same(lambda c: (lambda r: (r.matched_count, r.modified_count))(c.update_one(flt, {"$inc": {"hits": 1}})),
              f"update_one {flt}")
    pair.same(lambda c: c.update_many(flt, {"$set": {"seen": tag}}).matched_count, f"update_many {flt}")
    pair.same(lambda c: c.delete_one(flt).deleted_count, f"delete_one {flt}")
    pair.same(lambda c: raw(c.find()), f"contents after writes with {flt}")


def mixed_pools():
    values = pool()
    return {name: values for name in ("_id", "s", "d", "o", "n", "b")}


def clean_pools(docs=()):
    return {
        "_id": [ObjectId()] + [doc["_id"] for doc in docs[:: max(1, len(docs) // 8)]],
        "tag": ["x", "y", None],
        "owner": OWNERS + [str(OWNERS[0])],
        "status": STATUSES + ["NOPE"],
        "created": [at(m) for m in range(-5, 45, 3)],
        "due": [at(m) for m in range(-25, 25, 4)] + [None],
        "flag": [True, False],
        "n": [0, 1, 2.0, Int64(3)],
    }


INDEXES = [[("s", 1)], [("d", -1)], [("o", 1), ("d", -1)], [("n", 1)]]
CLEAN_INDEXES = [[("status", 1), ("due", 1)], [("owner", 1), ("created", -1)], [("created", -1)]]


# Values whose JSON text is not the one obvious text: -0.0 equals 0, 5 equals 5.0 and Int64(5),
# an ObjectId's text is a string's, dates outside 2001..2286 have other lengths.
EDGE_VALUES = [0, -0.0, 5, 5.0, Int64(5), 1e21, float(2**53 + 2), OWNERS[0], str(OWNERS[0]), at(1),
               datetime.datetime(1990, 5, 1), "a b", "a!", "a<b", "", None, True]


def edge_filters():
    """Each edge value with each operator (every mixed field holds every edge value somewhere;
    `n` has an index, `b` none)."""
    for field in ("n", "b"):
        for value in EDGE_VALUES:
            yield {field: value}
            yield {field: {"$in": [value, "alpha"]}}
            yield {field: {"$ne": value}}
            for op in ("$gt", "$gte", "$lt", "$lte"):
                yield {field: {op: value}}


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
        check_reads(pair, rng, flt, ["created", "due", "owner", "status", "flag", "tag", "_id"],
                    ["status", "owner", "flag", "tag"])
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


SAFE = ["a", "ab", "b", "ba", "Zed", "é", "alpha", "~"]
UNSAFE = ["a b", "a!", "a<b", "a=b", 'q"x', "q", "tab\tx", "tab", "back\\x", "back", ""]


def string_queries(pair):
    """Ranges and sorts on `s`, with prefixes of the odd strings as bounds."""
    for v in SAFE + UNSAFE:
        for op in ("$gt", "$gte", "$lt", "$lte"):
            for direction in (1, -1):
                flt = {"s": {op: v}}
                pair.same(lambda c: raw(c.find(flt, sort=[("s", direction)], limit=4)), f"find {flt} {direction}")
            pair.same(lambda c: c.count_documents(flt), f"count {flt}")
    for direction in (1, -1):
        pair.same(lambda c: raw(c.find({}, sort=[("s", direction), ("t", 1)], skip=2, limit=7)), f"sort s {direction}")


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


def as_explained(name, command):
    """The find/count/aggregate whose plan shows how `command` finds its documents."""
    coll = command[name]
    if name == "find":
        explained = {"find": coll, "filter": command.get("filter", {})}
        for key in ("sort", "skip", "limit"):
            if key in command:
                explained[key] = Int64(command[key]) if key != "sort" else command[key]
        return [explained]
    if name == "aggregate":
        return [{"aggregate": coll, "pipeline": command["pipeline"], "cursor": {}}]
    if name == "count":
        return [{"count": coll, "query": command.get("query", {})}]
    if name == "update":
        return [{"find": coll, "filter": u["q"]} | ({} if u.get("multi") else {"limit": Int64(1)})
                for u in command["updates"]]
    if name == "delete":
        return [{"find": coll, "filter": d["q"]} | ({"limit": Int64(1)} if d.get("limit") else {})
                for d in command["deletes"]]
    return [{"find": coll, "filter": command.get("query", {}), "sort": command.get("sort", {}), "limit": Int64(1)}]


TABLE_SCAN = re.compile(r"detail=SCAN \S+$")
# The one app query no declared index covers: the admin's user list sorts by created_at.
UNINDEXED = [{"find": "users", "sort": {"created_at": 1}}]


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
    from webapp.services import accounts
    from webapp.services import attempts
    from webapp.services import jobs
    from webapp.services import recovery

    log = CommandLog()
    pushdown, _ = servers.servers
    mongoengine.connect(alias="pushdown-test", host=pushdown.uri + "mailjobs_pushdown", uuidRepresentation="standard",
                        event_listeners=[log])
    models = (Job, User, RevokedToken, SweepTurn)
    try:
        with models_on("pushdown-test", models):
            for model in models:
                model.drop_collection()
                model.ensure_indexes()
            users = [User(email=f"u{i}@example.com", password_hash="x", role=Role.ADMIN if i == 0 else Role.USER)
                     for i in range(3)]
            for user in users:
                user.save()
            now = recovery.utcnow()
            for i in range(30):
                Job(owner_id=users[i % 2].id, to=["a@example.com"], subject="s", body="b", send_at=now,
                    next_attempt_at=now, message_id=f"<{i}@x>", status=JobStatus.ALL[i % len(JobStatus.ALL)]).save()
            accounts.revoke_token("jti-1", now)
            job = Job.objects(status=JobStatus.PENDING).first()
            log.commands.clear()

            # what the pages, the API, the workers and the sweep ask
            jobs.list_jobs(owner_id=users[0].id, page=2, per_page=5)
            jobs.list_jobs(owner_id=users[0].id, status=JobStatus.PENDING)
            jobs.list_jobs()
            jobs.list_jobs(status=JobStatus.COMPLETED)
            jobs.status_counts()
            jobs.status_counts(owner_id=users[1].id)
            jobs.count_by_owner([u.id for u in users])
            jobs.get_job(str(job.id), owner_id=job.owner_id)
            jobs.cancel_job(str(job.id))
            claimed = attempts.claim_job(Job.objects(status=JobStatus.PENDING).first().id, "w1", 30)
            attempts.renew_lease(claimed, 30)
            attempts.enter_data_stage(claimed, 30)
            attempts.mark_sent(claimed)
            recovery.recover_expired_leases(SimpleNamespace(in_doubt_policy="resend"), now=now)
            recovery.due_unqueued_jobs(now=now)
            recovery.next_attempt_of(job.id)
            recovery.lease_expiry(job.id)
            recovery.take_sweep_turn("sweep", "me", 5)
            accounts.find_user_by_email("u1@example.com")
            accounts.get_user(str(users[1].id))
            accounts.emails_by_id([u.id for u in users])
            accounts.count_admins()
            accounts.list_users(1, 20)
            accounts.is_token_revoked("jti-1")
            accounts.purge_expired_revocations(now)

            sent = list(log.commands)
            assert len(sent) > 25
            problems = []
            for name, command in sent:
                for explained in as_explained(name, command):
                    problems += plan_problems(pushdown, explained)
            assert not problems, "\n".join(problems)
    finally:
        mongoengine.disconnect(alias="pushdown-test")


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


def has_filter(explained):
    return bool(explained.get("filter") or explained.get("query")
                or (explained.get("pipeline") or [{}])[0].get("$match"))


def plan_problems(server, explained):
    """What is wrong with the plan of one command: a full scan, or work left to the handler."""
    client = pymongo.MongoClient(server.uri)
    try:
        plan = client.mailjobs_pushdown.command("explain", explained)
    finally:
        client.close()
    what = f"{explained}: {plan['queryPlanner'].get('SQL')} {plan['queryPlanner']['Plan']}"
    lines = plan["queryPlanner"]["Plan"]
    problems = []
    if has_filter(explained) and not plan["filterPushdown"]:
        problems.append(f"filter left to the handler: {what}")
    unindexed = {k: v for k, v in explained.items() if k in ("find", "sort")} in UNINDEXED
    if not unindexed and any(TABLE_SCAN.search(line) for line in lines):
        problems.append(f"full table scan: {what}")
    if has_filter(explained) and not any("SEARCH" in line and "INDEX" in line for line in lines):
        problems.append(f"no index search: {what}")
    if explained.get("sort") and not plan["sortPushdown"]:
        problems.append(f"sort left to the handler: {what}")
    if ("limit" in explained or "skip" in explained) and not plan["limitPushdown"]:
        problems.append(f"limit left to the handler: {what}")
    if ("count" in explained or "pipeline" in explained) and not plan.get("countPushdown"):
        problems.append(f"count left to the handler: {what}")
    return problems
