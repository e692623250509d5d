"""Sign up, sign in and sign out pages; the rules are the API's (webapp.services)."""

from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from webapp.auth.blueprint import bp
from webapp.auth.blueprint import safe_next
from webapp.auth.session import sign_in
from webapp.auth.session import sign_out
from webapp.services.accounts import users
from webapp.services.errors import Conflict
from webapp.services.errors import ValidationFailed
from webapp.services.validation import Credentials
from webapp.services.validation import LoginInput
from webapp.services.validation import parse
from webapp.web.audit_trail import audit_event
from webapp.web.audit_trail import audited
from webapp.web.localtime import DEFAULT_ZONE
from webapp.web.localtime import is_valid_zone
from webapp.web.throttle import login_throttled
from webapp.web.throttle import signup_throttled


def _form():
    """The posted email and password, as strings (a missing field is an empty one)."""
    return {"email": request.form.get("email", ""), "password": request.form.get("password", "")}


def _browser_zone():
    """The zone the page's script put in the form, if it is a real one."""
    zone = request.form.get("timezone", "")
    return zone if is_valid_zone(zone) else None


def _signup_refused(message):
    """The sign-up form again, with what was typed (not the password) and why it was refused."""
    return render_template("auth/signup.html", values=_form(), errors={}, failed=message)


def _login_refused(message):
    """The sign-in form again, with the email typed and why it was refused."""
    return render_template(
        "auth/login.html", values=_form(), errors={}, next_url=request.values.get("next", ""), failed=message
    )


@bp.route("/signup", methods=["GET", "POST"])
@signup_throttled(page=_signup_refused)
def signup():
    """Create an account (role `user`) and sign in with it."""
    if current_user.is_authenticated:
        return redirect(url_for("pages.jobs_page"))
    if request.method == "GET":
        return render_template("auth/signup.html", values={}, errors={})
    values = _form()
    try:
        data = parse(Credentials, values)
        with audited("sign_up", data.email, detail="page") as event:
            user = users.register(data.email, data.password, _browser_zone() or DEFAULT_ZONE)
            event.actor = event.target = user
    except (ValidationFailed, Conflict) as exc:
        return render_template("auth/signup.html", values=values, errors=exc.fields), exc.status
    sign_in(user)
    flash("Welcome! Your account is ready.", "success")
    return redirect(url_for("pages.jobs_page"))


@bp.route("/login", methods=["GET", "POST"])
@login_throttled(page=_login_refused)
def login():
    """Sign in; the same answer for an unknown email and a wrong password."""
    next_url = request.values.get("next", "")
    if current_user.is_authenticated:
        return redirect(safe_next(next_url))
    if request.method == "GET":
        return render_template("auth/login.html", values={}, errors={}, next_url=next_url)
    values = _form()
    try:
        data = parse(LoginInput, values)
    except ValidationFailed as exc:
        return render_template("auth/login.html", values=values, errors=exc.fields, next_url=next_url), 422
    user, why_not = users.check_sign_in(data.email, data.password)
    if why_not:
        audit_event("sign_in", user or data.email, outcome="failure", detail=f"page: {why_not}")
        return render_template(
            "auth/login.html", values=values, errors={}, next_url=next_url, failed="Wrong email or password."
        ), 401
    audit_event("sign_in", user, detail="page: browser session")
    zone = _browser_zone()
    if zone and zone != user.timezone:
        users.set_timezone(user, zone)
    sign_in(user)
    return redirect(safe_next(next_url))


@bp.post("/logout")
def logout():
    """Sign out everywhere (a POST with the CSRF token, so another site cannot sign you out).

    The server forgets every session cookie of this account, not just this browser's.
    """
    if current_user.is_authenticated:
        audit_event("sign_out", current_user, detail="every browser session ended")
    sign_out(current_user)
    flash("You are signed out.", "success")
    return redirect(url_for("auth.login"))
