"""GET /metrics: Prometheus text that parses, counters that move with real deliveries, and who may read it.

The deliveries are made by the suite's shared consumer (a real `huey_consumer` process).
"""

import time

from prometheus_client.parser import text_string_to_metric_families

from tests.support.waiting import wait_until


def scrape(client, **kwargs):
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    families = {family.name: family for family in text_string_to_metric_families(response.get_data(as_text=True))}
    return response, families


def sample(families, family, name=None, **labels):
    """The value of one sample (0 when absent)."""
    for s in families[family].samples:
        if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return 0


def settled(client, beat_seconds=2.0):
    """A scrape taken once the sent counter has stopped moving for over a heartbeat.

    Earlier tests' deliveries reach the counters at the consumer's next beat;
    counting from before they landed would see more than this test's three.
    """

    def steady():
        first = scrape(client)[1]
        time.sleep(beat_seconds * 1.25)
        second = scrape(client)[1]
        sent = ("mailjobs_deliveries", "mailjobs_deliveries_total")
        return second if sample(first, *sent, outcome="sent") == sample(second, *sent, outcome="sent") else None

    return wait_until(steady, 30, "the delivery counters to settle")


def test_metrics_parse_and_the_counters_move_after_a_real_delivery(client, api, consumer, smtp):
    headers = api.user()
    wait_until(lambda: sample(scrape(client)[1], "mailjobs_workers_alive") >= 1, 15, "the consumer's heartbeat")
    before = settled(client)
    response, _ = scrape(client)
    assert response.content_type.startswith("text/plain")
    assert {
        "mailjobs_jobs",
        "mailjobs_deliveries",
        "mailjobs_delivery_lateness_seconds",
        "mailjobs_workers_alive",
        "mailjobs_queue_depth",
    } <= set(before)
    assert before["mailjobs_jobs"].type == "gauge"
    assert before["mailjobs_deliveries"].type == "counter"
    assert before["mailjobs_delivery_lateness_seconds"].type == "histogram"
    assert {s.labels["status"] for s in before["mailjobs_jobs"].samples} == {
        "PENDING",
        "RUNNING",
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "IN_DOUBT",
    }
    assert {s.labels["queue"] for s in before["mailjobs_queue_depth"].samples} == {"pending", "scheduled"}

    for n in range(3):
        created = client.post(
            "/api/users/jobs", headers=headers, json={"to": "m@example.com", "subject": f"Counted {n}", "body": "b"}
        )
        assert created.status_code == 201
    smtp.wait_for(3)
    after = wait_until(
        lambda: (
            (f := scrape(client)[1])
            and sample(f, "mailjobs_deliveries", "mailjobs_deliveries_total", outcome="sent")
            - sample(before, "mailjobs_deliveries", "mailjobs_deliveries_total", outcome="sent")
            == 3
            and f
        ),
        10,
        "three more sent deliveries",
    )

    assert sample(after, "mailjobs_jobs", status="COMPLETED") == 3
    assert (
        sample(after, "mailjobs_delivery_lateness_seconds", "mailjobs_delivery_lateness_seconds_count")
        - sample(before, "mailjobs_delivery_lateness_seconds", "mailjobs_delivery_lateness_seconds_count")
        == 3
    )
    assert sample(after, "mailjobs_delivery_lateness_seconds", "mailjobs_delivery_lateness_seconds_sum") > sample(
        before, "mailjobs_delivery_lateness_seconds", "mailjobs_delivery_lateness_seconds_sum"
    )
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in after["mailjobs_delivery_lateness_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert buckets[-1][0] == float("inf")
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)  # cumulative
    assert sample(after, "mailjobs_deliveries", "mailjobs_deliveries_total", outcome="failed") == sample(
        before, "mailjobs_deliveries", "mailjobs_deliveries_total", outcome="failed"
    )


def test_openmetrics_is_served_to_a_scraper_that_asks_for_it(client, app):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")


def test_without_a_token_only_loopback_clients_are_answered(client, app):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    outside = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert outside.status_code == 403
    assert "METRICS_TOKEN" in outside.get_data(as_text=True)
    # Through a reverse proxy on the same host every request comes from loopback: not trusted.
    proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403


def test_with_a_token_it_takes_the_bearer_token_from_anywhere(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-me-please")
    outside = {"REMOTE_ADDR": "203.0.113.9"}
    assert (
        client.get("/metrics", environ_base=outside, headers={"Authorization": "Bearer scrape-me-please"}).status_code
        == 200
    )
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic scrape-me-please"}):
        refused = client.get("/metrics", environ_base=outside, headers=headers)
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics").status_code == 401  # loopback needs the token too once one is set
