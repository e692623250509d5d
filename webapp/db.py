"""The MongoDB connection (mongoengine), bound once per process."""

import mongoengine


def connect(uri):
    """Connect the default mongoengine alias to `uri` with aware datetimes.

    `connect=False` defers the socket until first use, so a pre-forking server
    (gunicorn) does not share a connection across forks. `DATETIME_CLAMP` reads
    a stored date outside Python's years 1-9999 as datetime.min/max instead of
    failing the whole query (one bad document must not take a table down).
    """
    mongoengine.disconnect()
    return mongoengine.connect(
        host=uri,
        tz_aware=True,
        connect=False,
        serverSelectionTimeoutMS=5000,
        uuidRepresentation="standard",
        datetime_conversion="DATETIME_CLAMP",
    )


def init_app(app):
    """Connect using the app's `MONGODB_URI`."""
    connect(app.config["MONGODB_URI"])
