"""What RQ keeps of a failed job in Redis (its traceback, for a week) is masked as a log line is."""

from __future__ import annotations

from rq.job import Job
from rq.registry import FailedJobRegistry

from registry.models import Priority
from workers.context import queues_of
from workers.worker import build_worker

QUOTED = "+254712345678 asked for 36611030002: DETAIL:  Failing row contains (7, Jane, Wanjiku, 2010-01-02)."


def explode() -> None:
    """A job whose exception quotes a phone number, an index number and a database row."""
    raise ValueError(QUOTED)


def test_a_failed_jobs_traceback_kept_in_redis_names_no_phone_number_or_row(runtime):
    queue = queues_of(runtime).get(Priority.REPLY.value)
    queue.enqueue(explode, job_id="boom", failure_ttl=60, result_ttl=0, description="boom")

    build_worker(runtime).work(burst=True, max_jobs=1)

    assert FailedJobRegistry(queue=queue).get_job_ids() == ["boom"]
    kept = Job.fetch("boom", connection=runtime.redis).latest_result().exc_string
    assert "ValueError" in kept and "explode" in kept  # still says what failed, and where
    for datum in ("712345678", "36611030002", "Jane", "Wanjiku", "2010-01-02"):
        assert datum not in kept, datum
