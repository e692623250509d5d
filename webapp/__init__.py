"""mailjobs: scheduled email that goes out on time, exactly once.

This package's `__init__` imports nothing, so `import webapp.services` loads no Flask:
the app factory lives in webapp.app, the domain in webapp.services (read its docstring
for the order its packages import each other in), the SMTP adapter in webapp.mail, and
the web surfaces in webapp.api, webapp.pages, webapp.admin, webapp.auth and webapp.web.
docs/architecture.md draws the whole house.
"""
