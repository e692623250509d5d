"""The admin panel: the delivery status page, everyone's jobs live, users and their roles, the audit log.

Admins only.
"""

from webapp.admin import audit  # noqa: F401 - registers routes
from webapp.admin import jobs  # noqa: F401 - registers routes
from webapp.admin import schedules  # noqa: F401 - registers routes
from webapp.admin import status  # noqa: F401 - registers routes
from webapp.admin import users  # noqa: F401 - registers routes
from webapp.admin.blueprint import bp

__all__ = ["bp"]
