from gateway.ratelimit import OTP_SEND, Limit, RateLimiter


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_limit_per_window(fake_redis):
    clock = Clock()
    limiter = RateLimiter(fake_redis, clock=clock)
    limit = Limit("t", 3, 60)
    assert [limiter.hit("a", [limit]).allowed for _ in range(5)] == [True, True, True, False, False]
    assert limiter.hit("b", [limit]).allowed  # other subjects are independent
    clock.now += 60
    assert limiter.hit("a", [limit]).allowed  # next window


def test_otp_send_policy(fake_redis):
    """>= 60 s apart, <= 5 an hour, <= 10 a day."""
    clock = Clock(now=86400 * 100)  # start of a day and an hour
    limiter = RateLimiter(fake_redis, clock=clock)
    phone = "+254712345678"
    assert limiter.hit(phone, OTP_SEND).allowed
    refused = limiter.hit(phone, OTP_SEND)
    assert not refused.allowed and refused.limit.name == "otp_gap" and 0 < refused.retry_after_s <= 60
    sent = 1
    for _ in range(30):
        clock.now += 61
        if limiter.hit(phone, OTP_SEND).allowed:
            sent += 1
    assert sent == 5  # the hour caps it
    day_sent = sent
    for _ in range(40):
        clock.now += 3600
        if clock.now >= 86400 * 101:
            break
        if limiter.hit(phone, OTP_SEND).allowed:
            day_sent += 1
    assert day_sent == 10  # the day caps it
    assert limiter.hit(phone, OTP_SEND).allowed  # a new day


def test_peek_does_not_count(fake_redis):
    limiter = RateLimiter(fake_redis, clock=Clock())
    limit = Limit("p", 1, 60)
    assert limiter.peek("x", [limit]).allowed
    assert limiter.peek("x", [limit]).allowed
    assert limiter.hit("x", [limit]).allowed
    assert not limiter.peek("x", [limit]).allowed


def test_real_redis_shared_between_clients(real_redis, redis_url):
    import redis

    other = redis.Redis.from_url(redis_url)
    limit = Limit("shared", 2, 60)
    clock = Clock()
    a, b = RateLimiter(real_redis, clock=clock), RateLimiter(other, clock=clock)
    assert a.hit("p", [limit]).allowed and b.hit("p", [limit]).allowed
    assert not a.hit("p", [limit]).allowed
