"""Authenticating a forge's push webhook (beyond upstream): GitHub's ``X-Hub-Signature-256``
(``sha256=<hex HMAC-SHA256 of the body>``), Gitea/Gogs' ``X-Gitea-Signature``/``X-Gogs-Signature``
(bare hex, same HMAC) and GitLab's ``X-Gitlab-Token`` (the secret itself). Comparisons are
constant-time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping


def authorized(secret: bytes, headers: Mapping[str, str], body: bytes) -> bool:
    if not secret:
        return False
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    github = lower.get("x-hub-signature-256", "")
    if github.startswith("sha256="):
        return hmac.compare_digest(github[len("sha256=") :].lower(), expected)
    for name in ("x-gitea-signature", "x-gogs-signature"):
        if name in lower:
            return hmac.compare_digest(lower[name].lower(), expected)
    token = lower.get("x-gitlab-token")
    if token is not None:
        return hmac.compare_digest(token.encode(), secret)
    return False


def sign(secret: bytes, body: bytes) -> str:
    """The GitHub header value for ``body``; for tests and for forges without HMAC support."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
