"""Credential checks and SASL mechanisms (RFC 5034), with no I/O.

A SASL exchange is a small object: :meth:`Mechanism.start` takes the initial
response (or ``None``) and each :meth:`Mechanism.step` takes one decoded client
response; both return a :class:`Challenge` to send, a :class:`Success` naming
the user, or a :class:`Failure`.  The protocol core does the base64 and the
``+ ``/``+OK``/``-ERR`` framing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from .store import Mailbox, MailStore

__all__ = [
    "ALL_MECHANISMS",
    "Authenticator",
    "Challenge",
    "Failure",
    "Mechanism",
    "Success",
    "make_mechanism",
]

#: Every SASL mechanism fakepop3 implements, strongest first (as curl picks them).
ALL_MECHANISMS = ("CRAM-MD5", "OAUTHBEARER", "XOAUTH2", "PLAIN", "LOGIN")


@dataclass(frozen=True)
class Challenge:
    """Send ``+ base64(data)`` and wait for the client's next response."""

    data: bytes


@dataclass(frozen=True)
class Success:
    """The exchange succeeded: log in to ``mailbox``."""

    mailbox: Mailbox

    def __repr__(self) -> str:
        return f"Success(user={self.mailbox.name!r})"


@dataclass(frozen=True)
class Failure:
    """The exchange failed: answer ``-ERR [code] text`` (``code`` None for a malformed message)."""

    text: str
    code: str | None = "AUTH"
    user: str | None = None


Step = Challenge | Success | Failure


class Authenticator:
    """Checks credentials against the store.

    With ``any_login`` every user name is accepted with any secret, and a
    maildrop is created for a user the store does not have.
    """

    def __init__(self, store: MailStore, *, any_login: bool = False) -> None:
        self.store = store
        self.any_login = any_login

    def _known(self, user: str) -> Mailbox | None:
        mailbox = self.store.get(user)
        if mailbox is None and self.any_login and _valid_name(user):
            mailbox = self.store.add_user(user)
        return mailbox

    def check_password(self, user: str, password: str) -> Mailbox | None:
        """The maildrop of ``user`` if ``password`` is right (any password with any_login)."""
        mailbox = self.store.get(user)  # the usual case first: one call less than _known
        if mailbox is None:
            mailbox = self._known(user)
            if mailbox is None:
                return None
        if self.any_login:
            return mailbox
        if mailbox.password is None or not hmac.compare_digest(
            mailbox.password.encode("utf-8"), password.encode("utf-8")
        ):
            return None
        return mailbox

    def check_digest(
        self, user: str, digest: Callable[[str], str], given: str, *, apop: bool = False
    ) -> Mailbox | None:
        """Check a digest of the user's password (APOP, CRAM-MD5): ``digest(password) == given``.

        APOP (``apop=True``) uses the user's ``apop_secret`` when one is set: real servers
        often keep it apart from the login password (qmail's ``pop3d``, Dovecot's
        ``passdb``)."""
        mailbox = self._known(user)
        if mailbox is None:
            return None
        if self.any_login:
            return mailbox
        secret = mailbox.password
        if apop and mailbox.apop_secret is not None:
            secret = mailbox.apop_secret
        if secret is None:
            return None
        return mailbox if hmac.compare_digest(digest(secret), given.lower()) else None

    def check_token(self, user: str, token: str) -> Mailbox | None:
        """The maildrop of ``user`` if ``token`` is one of its OAuth tokens (any token with any_login)."""
        mailbox = self._known(user)
        if mailbox is None:
            return None
        if self.any_login:
            return mailbox
        return mailbox if token in mailbox.tokens else None

    def user_for_token(self, token: str) -> str | None:
        """The user who owns ``token`` (for OAUTHBEARER without an authzid), or None."""
        for mailbox in self.store:
            if token in mailbox.tokens:
                return mailbox.name
        return None


def _valid_name(user: str) -> bool:
    return bool(user) and not any(c in user for c in "\r\n\0")


class Mechanism:
    """One SASL exchange in progress."""

    name = ""

    def __init__(self, auth: Authenticator, hostname: str) -> None:
        self.auth = auth
        self.hostname = hostname

    def start(self, initial: bytes | None) -> Step:
        raise NotImplementedError

    def step(self, response: bytes) -> Step:
        raise NotImplementedError


def _text(data: bytes) -> str | None:
    """Decoded UTF-8 credentials, or None if not UTF-8 or holding CR, LF or NUL."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "\r" in text or "\n" in text or "\0" in text:
        return None
    return text


_FAILED = Failure("Authentication failed.")
_MALFORMED = Failure("Malformed SASL response.", code=None)


class Plain(Mechanism):
    """RFC 4616: ``[authzid] NUL authcid NUL passwd``."""

    name = "PLAIN"

    def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        parts = response.split(b"\0")
        if len(parts) != 3:
            return _MALFORMED
        authzid, authcid, passwd = (_text(p) for p in parts)
        if authzid is None or authcid is None or passwd is None or not authcid:
            return _MALFORMED
        if authzid and authzid != authcid:
            return Failure("Authorization identity differs from the user.", user=authcid)
        mailbox = self.auth.check_password(authcid, passwd)
        return Success(mailbox) if mailbox is not None else Failure(_FAILED.text, user=authcid)


class Login(Mechanism):
    """The (obsolete but ubiquitous) LOGIN mechanism: user name, then password."""

    name = "LOGIN"
    user: str | None = None

    def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"Username:")
        return self.step(initial)

    def step(self, response: bytes) -> Step:
        text = _text(response)
        if text is None:
            return _MALFORMED
        if self.user is None:
            if not text:
                return _MALFORMED
            self.user = text
            return Challenge(b"Password:")
        mailbox = self.auth.check_password(self.user, text)
        return Success(mailbox) if mailbox is not None else Failure(_FAILED.text, user=self.user)


class CramMD5(Mechanism):
    """RFC 2195: the server sends a timestamp; the client answers ``user hmac-md5-hex``."""

    name = "CRAM-MD5"

    def start(self, initial: bytes | None) -> Step:
        if initial is not None:
            return Failure("CRAM-MD5 takes no initial response.", code=None)
        self.challenge = f"<{os.getpid()}.{time.time_ns()}@{self.hostname}>".encode()
        return Challenge(self.challenge)

    def step(self, response: bytes) -> Step:
        text = _text(response)
        if text is None:
            return _MALFORMED
        user, _, digest = text.rpartition(" ")
        if not user or len(digest) != 32:
            return _MALFORMED
        challenge = self.challenge

        def expected(password: str) -> str:
            return hmac.new(password.encode("utf-8"), challenge, hashlib.md5).hexdigest()

        mailbox = self.auth.check_digest(user, expected, digest)
        return Success(mailbox) if mailbox is not None else Failure(_FAILED.text, user=user)


class _Bearer(Mechanism):
    """Shared shape of XOAUTH2 and OAUTHBEARER: one message, an error challenge on failure."""

    error_json: ClassVar[dict[str, str]] = {}
    failed_user: str | None = None

    def start(self, initial: bytes | None) -> Step:
        if initial is None:
            return Challenge(b"")
        return self.check(initial)

    def step(self, response: bytes) -> Step:
        if self.failed_user is not None:
            # The client acknowledges the error challenge; now the exchange fails.
            return Failure(_FAILED.text, user=self.failed_user)
        return self.check(response)

    def parse(self, data: bytes) -> tuple[str, str] | None:
        raise NotImplementedError

    def check(self, data: bytes) -> Step:
        parsed = self.parse(data)
        if parsed is None:
            return _MALFORMED
        user, token = parsed
        mailbox = self.auth.check_token(user, token)
        if mailbox is not None:
            return Success(mailbox)
        self.failed_user = user
        return Challenge(json.dumps(self.error_json, separators=(",", ":")).encode())


def _kv(fields: list[bytes]) -> dict[str, str] | None:
    result = {}
    for field in fields:
        if not field:
            continue
        key, sep, value = field.partition(b"=")
        text = _text(value)
        if not sep or text is None:
            return None
        result[key.decode("ascii", "replace")] = text
    return result


def _bearer_token(auth: str | None) -> str | None:
    if auth is None:
        return None
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token


class XOAuth2(_Bearer):
    """Google's XOAUTH2: ``user=U ^A auth=Bearer T ^A ^A``."""

    name = "XOAUTH2"
    error_json: ClassVar[dict[str, str]] = {"status": "401", "schemes": "bearer", "scope": "mail"}

    def parse(self, data: bytes) -> tuple[str, str] | None:
        if not data.endswith(b"\x01\x01"):
            return None
        fields = _kv(data[:-2].split(b"\x01"))
        if fields is None:
            return None
        user, token = fields.get("user"), _bearer_token(fields.get("auth"))
        if not user or token is None:
            return None
        return user, token


class OAuthBearer(_Bearer):
    """RFC 7628: ``gs2-header ^A host=H ^A port=P ^A auth=Bearer T ^A ^A``."""

    name = "OAUTHBEARER"
    error_json: ClassVar[dict[str, str]] = {
        "status": "invalid_token",
        "schemes": "bearer",
        "scope": "mail",
    }

    def parse(self, data: bytes) -> tuple[str, str] | None:
        if not data.endswith(b"\x01\x01"):
            return None
        gs2, *rest = data[:-2].split(b"\x01")
        # gs2-header = gs2-cb-flag "," [ gs2-authzid ] "," ; channel binding is not supported
        parts = gs2.split(b",")
        if len(parts) != 3 or parts[0] not in (b"n", b"y") or parts[2]:
            return None
        authzid = parts[1]
        if authzid and not authzid.startswith(b"a="):
            return None
        user = _text(authzid[2:].replace(b"=2C", b",").replace(b"=3D", b"="))
        fields = _kv(rest)
        if fields is None or user is None or (authzid and not user):
            return None
        token = _bearer_token(fields.get("auth"))
        if token is None:
            return None
        if not user:
            # RFC 7628 s3.1: the authzid is optional; the token then names the user.
            # An unknown token names nobody: the check fails with the error challenge.
            user = self.auth.user_for_token(token) or ""
        return user, token


_MECHANISMS: dict[str, type[Mechanism]] = {
    m.name: m for m in (Plain, Login, CramMD5, XOAuth2, OAuthBearer)
}


def make_mechanism(name: str, auth: Authenticator, hostname: str) -> Mechanism | None:
    cls = _MECHANISMS.get(name.upper())
    return cls(auth, hostname) if cls else None
