"""What every web surface shares: error pages and JSON errors, HTMX, polls, tables,
throttling, security headers, template helpers, the viewer's local time and JWT hooks.

The blueprints (api, pages, admin, auth) import from here; nothing here imports a blueprint.
"""
