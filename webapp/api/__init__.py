"""The JSON API for bearer-token clients, under /api."""

from webapp.api import admin  # noqa: F401 - registers routes
from webapp.api import admin_delivery  # noqa: F401 - registers routes
from webapp.api import auth  # noqa: F401 - registers routes
from webapp.api import health  # noqa: F401 - registers routes
from webapp.api import jobs  # noqa: F401 - registers routes
from webapp.api import reference  # noqa: F401 - registers routes
from webapp.api import schedules  # noqa: F401 - registers routes
from webapp.api.blueprint import bp

__all__ = ["bp"]
