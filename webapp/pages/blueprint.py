"""The user pages' blueprint."""

from flask import Blueprint

bp = Blueprint("pages", __name__)
