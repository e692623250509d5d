"""Drive the HTML pages with Flask's test client, the way a browser would: tokens from the page."""

import re
import uuid

PASSWORD = "correct-horse-9"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class PageClient:
    """A signed-in (or not) browser session without a browser."""

    def __init__(self, client, ip=None):
        self.client = client
        self.environ = {"REMOTE_ADDR": ip} if ip else {}

    def get(self, path, htmx=False, **kwargs):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers = {"HX-Request": "true", "X-CSRFToken": self.csrf_token(), **headers}
        return self.client.get(path, headers=headers, environ_base=self.environ, **kwargs)

    def csrf_token(self, path="/login"):
        """The token the page embeds (meta tag and hidden inputs)."""
        page = self.client.get(path, environ_base=self.environ, follow_redirects=True).get_data(as_text=True)
        return _CSRF_META.search(page).group(1)

    def post(self, path, data=None, htmx=False, token=True, **kwargs):
        """Post a form; the token goes in the form, or in the header as htmx sends it."""
        data = dict(data or {})
        headers = kwargs.pop("headers", {})
        if token and htmx:
            headers["X-CSRFToken"] = self.csrf_token()
        elif token:
            data["csrf_token"] = self.csrf_token()
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.post(path, data=data, headers=headers, environ_base=self.environ, **kwargs)

    def signup(self, email=None, password=PASSWORD, timezone="Europe/Paris"):
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
        response = self.post("/signup", {"email": email, "password": password, "timezone": timezone})
        assert response.status_code == 302, response.get_data(as_text=True)
        return email

    def login(self, email, password=PASSWORD, timezone=""):
        return self.post("/login", {"email": email, "password": password, "timezone": timezone})

    def logout(self):
        return self.post("/logout")


def make_admin(email="root@example.com", pages=None):
    """Make `email` an admin (created with PASSWORD if new); sign `pages` in as them when given. The user."""
    from webapp.services.accounts import users

    admin = users.create_or_promote_admin(email, PASSWORD)
    if pages is not None:
        assert pages.login(email).status_code == 302
    return admin
