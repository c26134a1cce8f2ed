"""Hashing one-time codes and PINs with a server pepper; generating codes; the PIN policy.

The pepper is derived from ``ELIMU_SECRET_KEY`` (``settings.secret_key``), one key per use, so a
database dump alone lets nobody test guesses offline.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

OTP_DIGITS = 6
PIN_DIGITS = 4

# The most chosen 4-digit PINs (public studies of leaked PIN sets), on top of the patterns below.
COMMON_PINS = frozenset(
    {"1234", "1111", "0000", "1212", "7777", "1004", "2000", "4444", "2222", "6969", "9999", "3333", "5555",
     "6666", "1122", "1313", "8888", "4321", "2001", "1010"}
)


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A 32-byte key for one purpose (``otp``, ``pin``, ``seal``) from the service secret."""
    return hmac.new(secret_key.encode(), f"elimu:{purpose}".encode(), hashlib.sha256).digest()


def generate_otp() -> str:
    """Six random digits from the OS's CSPRNG, leading zeros kept."""
    return f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"


class OtpHasher:
    """One-time codes as ``scrypt:<log2 n>:<r>:<p>$<salt>$<hash>``: scrypt (n=1024, r=8, p=1; the
    hardening issue asks for scrypt or argon2) over HMAC-SHA256(pepper, code), with a 16-byte salt.

    The pepper, derived from the service secret and kept out of the database, is what protects a
    code: with the database but not the key, no guess can even be tested. No cost a USSD hop can
    afford makes an offline search of a million codes slow should the key leak too, so the cost is
    kept small: at n=4096 a code took 13-16 ms of CPU here, and with a 100,000-recipient
    announcement draining the OTP reached AT in 1.7-4.2 s at p95 (``bench`` B3, ten runs, median
    2.5 s); at n=1024 it takes 4 ms, and 0.6-2.0 s (seven runs, median 1.2 s; 2026-12-04). A code
    is also good for 5 minutes and 3 tries only, and only in a USSD session of the phone it was
    sent to, a number the telco gives, not the caller, once callbacks are authenticated
    (``ELIMU_WEBHOOK_TOKEN`` or ``ELIMU_ALLOWED_NETWORKS``; the service warns at start in
    production without either).

    The parameters travel in the stored hash, so they can change again; codes stored before they
    did (``scrypt$``: n=4096) still verify. An older process counts a code hashed with parameters
    it does not read as a wrong try, so restart every web process together across such an upgrade
    (``docs/deploy.md``).
    """

    LOG2_N, R, P = 10, 8, 1
    LEGACY = (12, 8, 1)  # the parameters of hashes stored as plain ``scrypt$``

    def __init__(self, secret_key: str) -> None:
        self._key = derive_key(secret_key, "otp")

    def _digest(self, salt: bytes, code: str, log2_n: int, r: int, p: int) -> bytes:
        peppered = hmac.new(self._key, code.encode(), hashlib.sha256).digest()
        return hashlib.scrypt(peppered, salt=salt, n=2**log2_n, r=r, p=p, dklen=32)

    def hash(self, code: str) -> str:
        salt = os.urandom(16)
        digest = self._digest(salt, code, self.LOG2_N, self.R, self.P)
        return f"scrypt:{self.LOG2_N}:{self.R}:{self.P}${salt.hex()}${digest.hex()}"

    def verify(self, stored: str, code: str) -> bool:
        """Constant-time check of ``code`` against a stored hash; False for malformed hashes."""
        try:
            scheme, salt_hex, digest_hex = stored.split("$")
            salt, digest = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
            params = _scrypt_params(scheme)
        except ValueError:
            return False
        if params is None or len(salt) != 16 or len(digest) != 32:
            return False
        return hmac.compare_digest(digest, self._digest(salt, code, *params))


def _scrypt_params(scheme: str) -> tuple[int, int, int] | None:
    """``(log2 n, r, p)`` of a stored OTP hash's scheme, or None when it is not one this reads (or
    its cost is outside what a hop may pay)."""
    if scheme == "scrypt":
        return OtpHasher.LEGACY
    name, *values = scheme.split(":")
    if name != "scrypt" or len(values) != 3:
        return None
    log2_n, r, p = (int(v) for v in values)
    return (log2_n, r, p) if 1 <= log2_n <= 14 and 1 <= r <= 16 and p == 1 else None


class PinHasher:
    """PINs with argon2id over HMAC-SHA256(pepper, PIN): slow to guess even with the database,
    impossible to guess without the key. Parameters are OWASP's minimum for argon2id
    (19 MiB, 2 passes), about 20 ms a check."""

    def __init__(self, secret_key: str, *, time_cost: int = 2, memory_cost: int = 19 * 1024) -> None:
        self._key = derive_key(secret_key, "pin")
        self._seal_key = derive_key(secret_key, "seal")
        self._argon = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)

    def _peppered(self, pin: str) -> str:
        return hmac.new(self._key, pin.encode(), hashlib.sha256).hexdigest()

    def hash(self, pin: str) -> str:
        return self._argon.hash(self._peppered(pin))

    def verify(self, stored: str | None, pin: str) -> bool:
        if not stored:
            return False
        try:
            return self._argon.verify(stored, self._peppered(pin))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def seal(self, pin: str) -> str:
        """A salted keyed token of a PIN to keep in session state between "choose" and "confirm"."""
        salt = os.urandom(8)
        mac = hmac.new(self._seal_key, salt + pin.encode(), hashlib.sha256).hexdigest()
        return f"{salt.hex()}${mac}"

    def seal_matches(self, sealed: str, pin: str) -> bool:
        try:
            salt_hex, mac = sealed.split("$")
            salt = bytes.fromhex(salt_hex)
        except ValueError:
            return False
        expected = hmac.new(self._seal_key, salt + pin.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(mac, expected)


def pin_is_trivial(pin: str, personal: Iterable[str] = ()) -> bool:
    """Whether a 4-digit PIN is too easy: one digit repeated, a run up or down (``0123``, ``9876``),
    two pairs (``1212``, ``1122``), a very common PIN, any year 1900-2099 (the guess after 1234),
    or a ``personal`` one (a birthday as DDMM or MMDD).

    Every year is refused, not the learners' birth years alone: refusing only those told whoever
    held a session at the choose-PIN screen each learner's birth year, one try per year."""
    if len(pin) != PIN_DIGITS or not pin.isdigit():
        return True
    if pin[:2] in ("19", "20"):
        return True
    digits = [int(d) for d in pin]
    steps = {b - a for a, b in zip(digits, digits[1:], strict=False)}
    if len(steps) == 1 and steps <= {-1, 0, 1}:
        return True
    if pin[:2] == pin[2:] or (pin[0] == pin[1] and pin[2] == pin[3]):
        return True
    return pin in COMMON_PINS or pin in set(personal)
