"""Events the registry announces without knowing who listens (the gateway counts them as metrics).

Each signal's sender is a short event name; keep personal data out of them.
"""

from blinker import Namespace

_signals = Namespace()

#: One-time codes: sender is "sent", "limited", "verified" or "failed".
otp_event = _signals.signal("elimu.otp")
