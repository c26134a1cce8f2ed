"""The worker tests use the SMS test fixtures."""

from tests.sms.conftest import at_runtime, fake_at, quick_retries, sms_runtime  # noqa: F401
