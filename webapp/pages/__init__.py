"""The signed-in user's pages: schedule an email, watch and cancel one's own jobs."""

from webapp.pages import jobs  # noqa: F401 - registers routes
from webapp.pages import schedules  # noqa: F401 - registers routes
from webapp.pages.blueprint import bp

__all__ = ["bp"]
