"""Documents, queries and comparisons for tests/ferretdb/test_ferretdb_pushdown.py.

A `Pair` is one collection on two FerretDB servers (pushdown, and the handler alone); the
`check_*` functions run the same reads and writes on both and assert identical answers.
The value pools hold what SQLite's JSON text gets wrong if taken at face value.
"""

import datetime
import re

import pymongo
from bson import Binary
from bson import Int64
from bson import ObjectId
from bson import Regex
from bson import Timestamp

OWNERS = [ObjectId() for _ in range(4)]
STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED"]
T0 = datetime.datetime(2025, 3, 1, 12, 0, 0)


def at(minutes):
    """A date `minutes` after T0 (2025: 13-digit milliseconds, the band SQLite can order)."""
    return T0 + datetime.timedelta(minutes=minutes)


# Values that look alike to SQLite (an ObjectId and its hex string, a date and a long, 5 and
# 5.0 and -0.0), strings whose JSON text does not order like them (escapes, bytes below '#'),
# dates outside 2001..2286 (their text has another length), arrays, documents, other types.
PLAIN_STRINGS = ["PENDING", "RUNNING", "alpha", "alpha2", "b", "ba", "Zed", "é", ""]
ODD_STRINGS = ["a b", "a!", "a<b", 'q"uote', "back\\slash", "tab\there", "a&b"]
NUMBERS = [0, 1, -1, 5, 100, Int64(5), Int64(2**40), 5.0, -0.0, 0.5, 1e-7, 1e21, float(2**53 + 2), 12345678901234]
DATES_IN_BAND = [at(0), at(1), at(1), at(30), at(600)]
DATES_OUT_OF_BAND = [datetime.datetime(1990, 5, 1), datetime.datetime(1969, 7, 20), datetime.datetime(2300, 1, 1)]
OTHERS = [
    True,
    False,
    None,
    [],
    ["alpha", 5],
    [None],
    [at(1), at(2)],
    {"a": 1},
    Binary(b"x"),
    Regex("^a"),
    Timestamp(5, 1),
    OWNERS[0],
    OWNERS[1],
]
MISSING = object()


def pool():
    """Every kind of value a mixed field draws from."""
    return (
        PLAIN_STRINGS
        + ODD_STRINGS
        + NUMBERS
        + DATES_IN_BAND
        + DATES_OUT_OF_BAND
        + OTHERS
        + [str(OWNERS[0]), MISSING, MISSING]
    )


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
    """The raw BSON of each document: comparing bytes compares types and key order too."""
    return [doc.raw for doc in docs]


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
        """Assert both servers answer op alike; `what` names the query in the failure."""
        got, want = self.both(op)
        assert got == want, f"{self.name}: {what}"
        return got

    def setup(self, docs, indexes):
        """The same collection on both: these indexes, these documents, in this order."""
        for coll in self.colls:
            coll.drop()
            for keys in indexes:
                coll.create_index(keys)
            for start in range(0, len(docs), 100):
                coll.insert_many(docs[start : start + 100], ordered=True)

    def explain(self, find):
        """FerretDB's explain of a find on the pushdown server (it shows SQLite's plan)."""
        return self.pushed.database.command("explain", {"find": self.name, **find})


# --- random queries ---------------------------------------------------------------------------

OPS = ["eq", "$eq", "$in", "$ne", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"]


def random_condition(rng, values):
    """One condition on a field: a value, or an operator with values from its pool."""
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
        return {
            op: value,
            rng.choice(["$lt", "$lte"] if op in ("$gt", "$gte") else ["$gt", "$gte"]): None
            if other is MISSING
            else other,
        }
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
    """A sort on one or two fields, sometimes with _id last."""
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
    pair.same(
        lambda c: raw(c.find(flt, sort=sort, skip=skip, limit=limit)),
        f"find {flt} sort {sort} skip {skip} limit {limit}",
    )
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
        pair.same(
            lambda c: c.database.command("count", c.name, query=flt, skip=skip, limit=limit)["n"],
            f"count {flt} skip {skip} limit {limit}",
        )
    field = rng.choice(group_fields)
    pipeline = [{"$match": flt}, {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
    pair.same(lambda c: raw(c.aggregate(pipeline)), f"group {pipeline}")
    one = rng.choice([1, Int64(1)])
    pipeline = [
        {"$match": flt},
        {"$group": {"_id": rng.choice([None, 1, "all"]), "n": {"$sum": one}}},
        {"$project": {"n": 1}},
    ]
    pair.same(lambda c: raw(c.aggregate(pipeline)), f"constant group {pipeline}")
    if rng.random() < 0.2:
        # two accumulators: FerretDB sums the second to 0; not pushed, same answer
        pipeline = [{"$match": flt}, {"$group": {"_id": 1, "n": {"$sum": 1}, "m": {"$sum": 1}}}]
        pair.same(lambda c: raw(c.aggregate(pipeline)), f"two accumulators {pipeline}")


def check_writes(pair, rng, flt, sort_fields, tag):
    """Which document a single write picks, and how many a multi-write touches."""
    sort = random_sort(rng, sort_fields)
    pair.same(
        lambda c: getattr(c.find_one_and_update(flt, {"$set": {"touched": tag}}, sort=sort), "raw", None),
        f"find_one_and_update {flt} sort {sort}",
    )
    pair.same(
        lambda c: (lambda r: (r.matched_count, r.modified_count))(c.update_one(flt, {"$inc": {"hits": 1}})),
        f"update_one {flt}",
    )
    pair.same(lambda c: c.update_many(flt, {"$set": {"seen": tag}}).matched_count, f"update_many {flt}")
    pair.same(lambda c: c.delete_one(flt).deleted_count, f"delete_one {flt}")
    pair.same(lambda c: raw(c.find()), f"contents after writes with {flt}")


def mixed_pools():
    """Query values for the mixed documents' fields: anything."""
    values = pool()
    return {name: values for name in ("_id", "s", "d", "o", "n", "b")}


def clean_pools(docs=()):
    """Query values for app-shaped documents, with some of their _ids and a few that match nothing."""
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
EDGE_VALUES = [
    0,
    -0.0,
    5,
    5.0,
    Int64(5),
    1e21,
    float(2**53 + 2),
    OWNERS[0],
    str(OWNERS[0]),
    at(1),
    datetime.datetime(1990, 5, 1),
    "a b",
    "a!",
    "a<b",
    "",
    None,
    True,
]


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


# --- the app's queries: how SQLite answers them (explain) -------------------------------------

TABLE_SCAN = re.compile(r"detail=SCAN \S+$")


def as_explained(name, command):
    """The find/count/aggregate whose plan shows how `command` (as the app sent it) finds its documents."""
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
        return [
            {"find": coll, "filter": u["q"]} | ({} if u.get("multi") else {"limit": Int64(1)})
            for u in command["updates"]
        ]
    if name == "delete":
        return [
            {"find": coll, "filter": d["q"]} | ({"limit": Int64(1)} if d.get("limit") else {})
            for d in command["deletes"]
        ]
    return [{"find": coll, "filter": command.get("query", {}), "sort": command.get("sort", {}), "limit": Int64(1)}]


def has_filter(explained):
    """Whether the explained command filters at all (an empty filter has nothing to search by)."""
    return bool(
        explained.get("filter") or explained.get("query") or (explained.get("pipeline") or [{}])[0].get("$match")
    )


def _equalities(explained):
    """How many fields the command's filter pins to a value (or a few, with $in)."""
    flt = explained.get("filter") or explained.get("query") or (explained.get("pipeline") or [{}])[0].get("$match")
    count = 0
    for field, condition in (flt or {}).items():
        if field.startswith("$"):
            continue
        if not isinstance(condition, dict) or "$in" in condition or "$eq" in condition:
            count += 1
    return count, "_id" in (flt or {})


RANGES = ("$lt", "$lte", "$gt", "$gte")


def _ranged(explained):
    """Whether the command's filter bounds a field (other than `_id`) with a range."""
    flt = explained.get("filter") or explained.get("query") or (explained.get("pipeline") or [{}])[0].get("$match")
    return any(
        isinstance(condition, dict) and any(op in condition for op in RANGES)
        for field, condition in (flt or {}).items()
        if not field.startswith("$") and field != "_id"
    )


def plan_problems(uri, database, explained, unindexed=(), strict=False):
    """What is wrong with the plan of one command: a full scan, or work left to the handler.

    `unindexed`: commands ({"find": collection, "sort": ...}) allowed to read the whole collection.
    `strict`: also a sorted query must walk an index in its order, not sort what it matched
    (SQLite's "USE TEMP B-TREE FOR ORDER BY": its cost grows with the matches), and every field
    the filter pins to a value must be one the index search uses (else the rows are read to
    check it), and so must a range (`expires_at <= now` searched by `status` alone reads every
    PENDING job); a filter on `_id` is exempt, the unique index finds one document.
    """
    client = pymongo.MongoClient(uri)
    try:
        plan = client[database].command("explain", explained)
    finally:
        client.close()
    if "Plan" not in plan["queryPlanner"]:
        return []  # no such collection (yet): FerretDB answers without reading anything
    what = f"{explained}: {plan['queryPlanner'].get('SQL')} {plan['queryPlanner']['Plan']}"
    lines = plan["queryPlanner"]["Plan"]
    problems = []
    if has_filter(explained) and not plan["filterPushdown"]:
        problems.append(f"filter left to the handler: {what}")
    allowed = {k: v for k, v in explained.items() if k in ("find", "sort")} in list(unindexed)
    if not allowed and any(TABLE_SCAN.search(line) for line in lines):
        problems.append(f"full table scan: {what}")
    if has_filter(explained) and not any("SEARCH" in line and "INDEX" in line for line in lines):
        problems.append(f"no index search: {what}")
    if explained.get("sort") and not plan["sortPushdown"]:
        problems.append(f"sort left to the handler: {what}")
    if strict and explained.get("sort") and any(line.endswith("USE TEMP B-TREE FOR ORDER BY") for line in lines):
        problems.append(f"sorted after matching, not read in index order: {what}")
    pinned, by_id = _equalities(explained)
    searched = max((line.count("=?") for line in lines if "SEARCH" in line), default=0)
    if strict and not by_id and searched < pinned:
        problems.append(f"{pinned - searched} pinned field(s) checked on the rows, not in the index: {what}")
    ranged_search = any(("<?" in line or ">?" in line) for line in lines if "SEARCH" in line)
    if strict and not by_id and not allowed and _ranged(explained) and not ranged_search:
        problems.append(f"range checked on the rows, not in the index: {what}")
    if ("limit" in explained or "skip" in explained) and not plan["limitPushdown"]:
        problems.append(f"limit left to the handler: {what}")
    if ("count" in explained or "pipeline" in explained) and not plan.get("countPushdown"):
        problems.append(f"count left to the handler: {what}")
    return problems
