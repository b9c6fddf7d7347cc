"""OAuth 2.0 for the local org: the External Client App, its client credentials and refresh-token grants,
and the access tokens they issue, answering with a real org's bodies for every failure."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

API_SCOPE = "api"


@dataclass
class ClientApp:
    """An External Client App with its OAuth policy, as configured in Setup."""

    consumer_key: str
    consumer_secret: str
    client_credentials_enabled: bool = True
    run_as_user_id: str | None = None
    refresh_tokens: set[str] = field(default_factory=set)


@dataclass
class AccessToken:
    token: str
    user_id: str
    issued_at_ms: int
    expired: bool = False


class OAuthError(Exception):
    """A token-endpoint failure: HTTP 400 with `{"error", "error_description"}`."""

    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class Authority:
    """Issues and checks tokens. One per org; thread-safe."""

    def __init__(self, org_id: str, app: ClientApp):
        self.org_id = org_id
        self.app = app
        self.api_disabled_users: set[str] = set()
        self._tokens: dict[str, AccessToken] = {}
        self._lock = threading.Lock()

    # -- the token endpoint ---------------------------------------------------------------------------
    def token_response(self, form: dict[str, str], authorization: str | None, instance_url: str) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        client_id, client_secret = self._client_credentials(form, authorization)
        if grant == "client_credentials":
            self._check_client(client_id, client_secret)
            if not self.app.client_credentials_enabled:
                raise OAuthError("invalid_grant", "request not supported on this domain")
            if self.app.run_as_user_id is None:
                raise OAuthError("invalid_grant", "no client credentials user enabled")
            return self._issue(self.app.run_as_user_id, instance_url)
        if grant == "refresh_token":
            self._check_client(client_id, client_secret, secret_required=bool(client_secret))
            token = form.get("refresh_token", "")
            if token not in self.app.refresh_tokens or self.app.run_as_user_id is None:
                raise OAuthError("invalid_grant", "expired access/refresh token")
            return self._issue(self.app.run_as_user_id, instance_url)
        if grant in ("password", "authorization_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"):
            self._check_client(client_id, client_secret, secret_required=grant != "urn:ietf:params:oauth:grant-type:jwt-bearer")
            raise OAuthError("invalid_grant", "authentication failure")
        raise OAuthError("unsupported_grant_type", "grant type not supported")

    def new_refresh_token(self) -> str:
        token = "5Aep861" + secrets.token_urlsafe(60).replace("-", "a").replace("_", "b")
        self.app.refresh_tokens.add(token)
        return token

    def _client_credentials(self, form: dict[str, str], authorization: str | None) -> tuple[str, str]:
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization.split(" ", 1)[1].strip()).decode("utf-8")
                key, _, secret = decoded.partition(":")
                return unquote_plus(key), unquote_plus(secret)
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "invalid client credentials") from None
        return form.get("client_id", ""), form.get("client_secret", "")

    def _check_client(self, client_id: str, client_secret: str, secret_required: bool = True) -> None:
        if not client_id or not hmac.compare_digest(client_id, self.app.consumer_key):
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if secret_required and not hmac.compare_digest(client_secret, self.app.consumer_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _issue(self, user_id: str, instance_url: str) -> dict[str, Any]:
        issued_at = str(int(time.time() * 1000))
        token = f"{self.org_id[:15]}!AR" + secrets.token_urlsafe(72).replace("-", "x").replace("_", "y")[:96]
        with self._lock:
            self._tokens[token] = AccessToken(token=token, user_id=user_id, issued_at_ms=int(issued_at))
        identity = f"{instance_url}/id/{self.org_id}/{user_id}"
        signature = base64.b64encode(
            hmac.new(self.app.consumer_secret.encode(), (identity + issued_at).encode(), hashlib.sha256).digest()
        ).decode()
        return {
            "access_token": token,
            "signature": signature,
            "scope": API_SCOPE,
            "instance_url": instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "api_instance_url": instance_url,
        }

    # -- checking a request ---------------------------------------------------------------------------
    def user_for(self, authorization: str | None) -> str | None:
        """The user a Bearer (or `OAuth`) token acts as, or None when missing, unknown or expired."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            return None
        with self._lock:
            entry = self._tokens.get(token.strip())
        if entry is None or entry.expired:
            return None
        return entry.user_id

    def expire_all(self) -> int:
        """Invalidate every issued access token (a session timeout); refresh tokens still work."""
        with self._lock:
            for entry in self._tokens.values():
                entry.expired = True
            return len(self._tokens)

    def revoke_refresh_tokens(self) -> None:
        self.app.refresh_tokens.clear()
