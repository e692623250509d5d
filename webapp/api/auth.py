"""Register, log in, log out, who am I."""

from datetime import UTC
from datetime import datetime

from flask import current_app
from flask_jwt_extended import create_access_token
from flask_jwt_extended import current_user
from flask_jwt_extended import get_jwt

from webapp.api.blueprint import bp
from webapp.api.blueprint import json_body
from webapp.api.blueprint import login_required
from webapp.api.contract import describe
from webapp.api.schemas import MessageOut
from webapp.api.schemas import RegisteredOut
from webapp.api.schemas import TokenOut
from webapp.api.schemas import UserOut
from webapp.api.serialize import user_out
from webapp.services.accounts import users
from webapp.services.errors import Unauthorized
from webapp.services.validation import AccountSettings
from webapp.services.validation import Credentials
from webapp.services.validation import LoginInput
from webapp.services.validation import parse
from webapp.web.audit_trail import audit_event
from webapp.web.audit_trail import audited
from webapp.web.throttle import login_throttled
from webapp.web.throttle import signup_throttled


@bp.post("/auth/register")
@describe(
    body=Credentials,
    responses={201: RegisteredOut},
    errors={409: "An account with this email exists.", 429: "Too many sign-ups from this address."},
)
@signup_throttled()
def register():
    """Create an account with role `user`."""
    data = parse(Credentials, json_body())
    with audited("sign_up", data.email, detail="API") as event:
        user = users.register(data.email, data.password)
        event.actor = event.target = user
    return RegisteredOut(id=str(user.id), email=user.email, role=user.role), 201


@bp.post("/auth/login")
@describe(
    body=LoginInput,
    responses={200: TokenOut},
    errors={
        401: "Wrong email or password, or a disabled account (the same answer for all three).",
        429: "Too many sign-in attempts from this address or on this account.",
    },
)
@login_throttled()
def login():
    """Exchange credentials for a bearer token (same answer for unknown email, wrong password, disabled account)."""
    data = parse(LoginInput, json_body())
    account, why_not = users.check_sign_in(data.email, data.password)
    if why_not:
        audit_event("sign_in", account or data.email, outcome="failure", detail=f"API: {why_not}")
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    audit_event("sign_in", account, detail="API: token issued")
    expires = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    token = create_access_token(
        identity=str(account.id), additional_claims={"gen": account.token_generation or 0, **users.token_claims()}
    )
    return TokenOut(access_token=token, token_type="Bearer", expires_in=int(expires.total_seconds()))


@bp.post("/auth/logout")
@describe(responses={200: MessageOut}, tag="Account")
@login_required
def logout():
    """Revoke this token at once; it stays revoked until it would have expired."""
    claims = get_jwt()
    users.revoke_token(current_user, claims["jti"], datetime.fromtimestamp(claims["exp"], UTC))
    audit_event("token_revoke", current_user, target=("token", claims["jti"], None))
    return MessageOut(message="Logged out.")


@bp.get("/users/me")
@describe(responses={200: UserOut}, tag="Account")
@login_required
def me():
    """The caller's account, with its time zone and default windows."""
    return user_out(current_user)


@bp.patch("/users/me")
@describe(body=AccountSettings, responses={200: UserOut}, tag="Account")
@login_required
def update_me():
    """Set the account's time zone and/or the default windows of jobs created without any."""
    data = parse(AccountSettings, json_body())
    return user_out(users.update_settings(current_user._get_current_object(), data))
