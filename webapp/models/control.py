"""Switches an admin flips for the whole system; today one: pause delivery."""

from mongoengine import BooleanField
from mongoengine import DateTimeField
from mongoengine import Document
from mongoengine import StringField

DELIVERY = "delivery"


class DeliveryControl(Document):
    """`_id: "delivery"`: while `paused`, no consumer claims a job (webapp.services.delivery.pause)."""

    id = StringField(primary_key=True, default=DELIVERY)
    paused = BooleanField(default=False)
    paused_at = DateTimeField()
    paused_by = StringField()
    resumed_at = DateTimeField()
    resumed_by = StringField()

    meta = {"collection": "controls"}
