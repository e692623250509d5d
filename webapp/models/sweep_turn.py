"""Whose turn it is to run the periodic sweep."""

from mongoengine import DateTimeField
from mongoengine import Document
from mongoengine import StringField


class SweepTurn(Document):
    """One document per periodic task: the consumer that took the current turn, and until when.

    Every consumer schedules the periodic sweep; the first to take the turn
    runs it and the others skip, so by default one sweep runs per interval
    however many consumers there are. Correctness does not depend on it: the
    sweep's changes are fenced, so concurrent sweeps are safe, only wasteful.
    """

    name = StringField(primary_key=True)
    holder = StringField()
    taken_at = DateTimeField()
    next_turn_at = DateTimeField()

    meta = {"collection": "sweep_turns"}
