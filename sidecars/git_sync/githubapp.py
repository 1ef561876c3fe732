"""GitHub-app authentication: mint an RS256 JWT from the app's private key, exchange it for an
installation token at ``<base>/app/installations/<id>/access_tokens``, and refresh the token when
it is about to expire, as upstream does.

RS256 needs only modular exponentiation and a DER reader for the PEM key, so this is done with the
standard library rather than adding a cryptography dependency for one signature every hour.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime

# DER prefix of DigestInfo{sha256} for EMSA-PKCS1-v1_5 (RFC 8017 §9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_RSA_OID = bytes.fromhex("2a864886f70d010101")


class GitHubAppError(Exception):
    pass


@dataclass(frozen=True)
class RsaKey:
    n: int
    e: int
    d: int


def _der_element(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """Read one DER TLV at ``pos``: (tag, value, next position)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    return tag, data[pos : pos + length], pos + length


def _der_sequence(data: bytes) -> list[tuple[int, bytes]]:
    tag, body, _ = _der_element(data, 0)
    if tag != 0x30:
        raise GitHubAppError("private key: expected a DER SEQUENCE")
    items = []
    pos = 0
    while pos < len(body):
        item_tag, value, pos = _der_element(body, pos)
        items.append((item_tag, value))
    return items


def load_private_key(pem: str) -> RsaKey:
    """An RSA key from PKCS#1 (``BEGIN RSA PRIVATE KEY``) or PKCS#8 (``BEGIN PRIVATE KEY``)."""
    lines = [line.strip() for line in pem.strip().splitlines()]
    if len(lines) < 3 or not lines[0].startswith("-----BEGIN") or "PRIVATE KEY" not in lines[0]:
        raise GitHubAppError("private key: not a PEM private key")
    try:
        der = base64.b64decode("".join(line for line in lines if not line.startswith("-----")))
        items = _der_sequence(der)
        if "BEGIN PRIVATE KEY" in lines[0]:
            if _RSA_OID not in items[1][1]:
                raise GitHubAppError("private key: not an RSA key")
            items = _der_sequence(items[2][1])
        n, e, d = (int.from_bytes(items[i][1], "big") for i in (1, 2, 3))
    except (IndexError, ValueError) as err:
        raise GitHubAppError(f"private key: malformed ({err})") from None
    return RsaKey(n=n, e=e, d=d)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rs256(key: RsaKey, message: bytes) -> bytes:
    size = (key.n.bit_length() + 7) // 8
    digest = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    padded = b"\x00\x01" + b"\xff" * (size - len(digest) - 3) + b"\x00" + digest
    return pow(int.from_bytes(padded, "big"), key.d, key.n).to_bytes(size, "big")


def make_jwt(key: RsaKey, issuer: str, now: float) -> str:
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    claims = _b64url(json.dumps({"iss": issuer, "iat": int(now), "exp": int(now) + 600}).encode())
    signing_input = f"{header}.{claims}".encode()
    return f"{header}.{claims}.{_b64url(rs256(key, signing_input))}"


@dataclass
class AppToken:
    token: str
    expires_at: float  # epoch seconds


class GitHubApp:
    def __init__(self, base_url: str, private_key: str, issuer: str, installation_id: int) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.key = load_private_key(private_key)
        self.issuer = issuer
        self.installation_id = installation_id
        self.current: AppToken | None = None

    def needs_refresh(self) -> bool:
        return self.current is None or self.current.expires_at < time.time() + 30

    def refresh(self, timeout: float) -> AppToken:
        """Blocking (run it in a thread): exchange a fresh JWT for an installation token."""
        url = f"{self.base_url}app/installations/{self.installation_id}/access_tokens"
        request = urllib.request.Request(url, method="POST", data=b"")
        request.add_header(
            "Authorization", "Bearer " + make_jwt(self.key, self.issuer, time.time())
        )
        request.add_header("Accept", "application/vnd.github+json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read(65536)
        except urllib.error.HTTPError as err:
            raise GitHubAppError(
                f"GitHub app installation endpoint returned status {err.code}"
            ) from None
        except OSError as err:
            raise GitHubAppError(f"GitHub app installation endpoint failed: {err}") from None
        if status != 201:
            raise GitHubAppError(f"GitHub app installation endpoint returned status {status}")
        try:
            payload = json.loads(body)
            expires = datetime.fromisoformat(payload["expires_at"].replace("Z", "+00:00"))
            self.current = AppToken(str(payload["token"]), expires.timestamp())
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise GitHubAppError(f"GitHub app token reply is malformed: {err}") from None
        return self.current
