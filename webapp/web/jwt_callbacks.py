"""flask-jwt-extended hooks: load the user fresh, honour revocations, answer errors in our JSON shape."""

from flask import g

from webapp.services.accounts import users
from webapp.web.errors import json_error


def register_jwt_callbacks(jwt):
    """Wire the JWTManager to our accounts and error format."""

    # flask-jwt-extended asks whether the token is revoked, then for its user: one read answers
    # both (the revocations are on the user document), kept in `g` for this token only.
    @jwt.user_lookup_loader
    def load_user(_header, payload):
        # Read on every request anyway (by the revocation check just before, see is_revoked): a
        # disabled account's tokens stop working at once, for free, and a token from before a
        # disable (an older `gen`) never works again.
        jti, user = g.pop("_token_user", (None, None))
        if jti != payload["jti"]:
            user = users.get_user(payload["sub"])
        if user is not None and user.disabled:
            g.jwt_refusal = "disabled"
            return None
        if user is not None and payload.get("gen", 0) != (user.token_generation or 0):
            g.jwt_refusal = "superseded"
            return None
        return user

    @jwt.token_in_blocklist_loader
    def is_revoked(_header, payload):
        user = users.get_user(payload["sub"])
        g._token_user = (payload["jti"], user)
        return users.is_token_revoked(user, payload)

    @jwt.unauthorized_loader
    def missing_token(reason):
        return json_error(401, "unauthorized", "Send a bearer token: Authorization: Bearer <token>.")

    @jwt.invalid_token_loader
    def invalid_token(reason):
        return json_error(401, "invalid_token", f"The token is not valid: {reason}.")

    @jwt.expired_token_loader
    def expired_token(_header, _payload):
        return json_error(401, "token_expired", "The token has expired; log in again.")

    @jwt.revoked_token_loader
    def revoked_token(_header, _payload):
        return json_error(401, "token_revoked", "The token was revoked by logout; log in again.")

    @jwt.user_lookup_error_loader
    def user_gone(_header, _payload):
        if g.get("jwt_refusal") == "disabled":
            return json_error(401, "account_disabled", "This account is disabled; ask an admin.")
        if g.get("jwt_refusal") == "superseded":
            return json_error(
                401, "token_revoked", "The token was revoked when the account was disabled; log in again."
            )
        return json_error(401, "unknown_user", "The account for this token no longer exists.")
