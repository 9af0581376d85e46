"""The webhook payload of a job's terminal move is made from the values that move wrote, not
read back: a settled price, the output's URL and the error are the row's as committed."""

from __future__ import annotations

from hyperlocal.core.webhooks import payload_for
from hyperlocal.store.tables import Job


def _running_job() -> Job:
    return Job(
        id="job_1",
        status="running",
        category="audio",
        model="audio-asr",
        credits=90,
        output_url=None,
        error=None,
    )


def test_a_completion_shows_the_settled_credits_and_the_output() -> None:
    ended = {"status": "completed", "output_url": "http://h/o.json", "credits": 1}
    assert payload_for(_running_job(), ended) == {
        "status": "completed",
        "jobId": "job_1",
        "outputUrl": "http://h/o.json",
        "type": "audio",
        "model": "audio-asr",
        "creditsUsed": 1,
    }


def test_a_failure_shows_the_error_and_the_charge() -> None:
    payload = payload_for(_running_job(), {"status": "failed", "error": "boom"})
    assert (payload["status"], payload["error"], payload["creditsUsed"]) == ("failed", "boom", 90)
    assert "outputUrl" not in payload


def test_without_values_the_row_speaks_for_itself() -> None:
    job = _running_job()
    job.status, job.error = "canceled", None
    payload = payload_for(job)
    assert (payload["status"], payload["error"]) == ("failed", "failed")  # as the wire says
