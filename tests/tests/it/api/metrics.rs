//! The services' own metrics (issue 14): query-api's `/metrics` counts a request under its
//! route template and status, times it, times its ClickHouse queries by kind and counts the
//! identity cache; and the Grafana dashboard asks only for series the code exports.
//!
//! The recorder is process-wide and other tests run beside this one, so the assertions are on
//! increases between two scrapes (counters only grow), never on absolute values.

use std::collections::BTreeSet;

use logbus_ingest::metrics::names as ingest;
use logbus_query_api::metrics::names as api;
use serde_json::Value;

use crate::support::api::*;

/// One sample of the Prometheus text format: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of an exposition (label values without escapes: ours have none).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once("=\"").expect("key=\"value\"");
                    (key.to_owned(), value.trim_end_matches('"').to_owned())
                })
                .collect();
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The sum of the samples named `name` that carry every label of `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(api: &Api) -> (String, Vec<Sample>) {
    let response = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("scraped");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("body");
    let parsed = samples(&text);
    (text, parsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_shows_up_in_the_counters_histograms_and_cache_metrics() {
    // A long TTL: the second lookup of Alice is a hit whatever the machine's speed.
    let api = Api::start_with_ttl_ms(60_000).await;
    api.seed(&[log(now() - 60, ALICE)], &identities()).await;

    let (_, before) = scrape(&api).await;
    api.data("/api/log/self?p=1", ALICE).await;
    // The slash twin counts under the same canonical route.
    api.data("/api/log/self/?p=1", ALICE).await;
    let (status, _) = api.get("/no/such/path?key=sk-secret-in-query", None).await;
    assert_eq!(status, 404);
    let (text, after) = scrape(&api).await;

    let increase = |name: &str, labels: &[(&str, &str)]| {
        total(&after, name, labels) - total(&before, name, labels)
    };
    let self_route = [("route", "/api/log/self"), ("method", "GET")];
    assert!(
        increase(
            api::REQUESTS,
            &[self_route[0], self_route[1], ("status", "200")]
        ) >= 2.0,
        "{text}"
    );
    let histogram_count = format!("{}_count", api::REQUEST_SECONDS);
    assert!(increase(&histogram_count, &self_route) >= 2.0, "{text}");
    let buckets = format!("{}_bucket", api::REQUEST_SECONDS);
    assert!(
        increase(&buckets, &[self_route[0], ("le", "+Inf")]) >= 2.0,
        "{text}"
    );
    assert!(
        increase(api::REQUESTS, &[("route", "fallback"), ("status", "404")]) >= 1.0,
        "{text}"
    );
    // Neither raw paths nor query strings (they may hold token keys) become labels.
    assert!(!text.contains("/no/such/path"), "{text}");
    assert!(!text.contains("sk-secret-in-query"), "{text}");

    let query_count = format!("{}_count", api::QUERY_SECONDS);
    for kind in ["list_page", "list_count", "users_by_access_token"] {
        assert!(
            increase(&query_count, &[("kind", kind)]) >= 1.0,
            "{kind}: {text}"
        );
    }
    assert!(
        increase(api::CACHE_MISSES, &[("kind", "user")]) >= 1.0,
        "{text}"
    );
    assert!(
        increase(api::CACHE_HITS, &[("kind", "user")]) >= 1.0,
        "{text}"
    );
    assert!(
        after.iter().any(|s| s.name == api::IN_FLIGHT),
        "the in-flight gauge is exported: {text}"
    );
    // The worker feeding this API shares the recorder: its series are on this /metrics too.
    if !direct_seed() {
        assert!(total(&after, ingest::ROWS_WRITTEN, &[]) >= 1.0, "{text}");
        assert!(after.iter().any(|s| s.name == ingest::LAST_FLUSH), "{text}");
    }
    api.finish().await;
}

/// Every metric a PromQL expression names: `logbus_` identifiers, with a histogram's
/// `_bucket`/`_count`/`_sum` series reduced to the histogram.
fn metric_names(expr: &str, histograms: &BTreeSet<&str>) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("logbus_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| histograms.contains(base))
            .unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

fn exprs(panel: &Value, out: &mut Vec<(String, String)>) {
    let title = panel["title"].as_str().unwrap_or("?").to_owned();
    for target in panel["targets"].as_array().into_iter().flatten() {
        if let Some(expr) = target["expr"].as_str() {
            out.push((title.clone(), expr.to_owned()));
        }
    }
    for inner in panel["panels"].as_array().into_iter().flatten() {
        exprs(inner, out);
    }
}

#[test]
fn the_dashboard_asks_only_for_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/logbus.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let known: BTreeSet<&str> = ingest::ALL.iter().chain(api::ALL).copied().collect();
    let histograms: BTreeSet<&str> = known
        .iter()
        .copied()
        .filter(|name| name.ends_with("_seconds") && !name.contains("timestamp"))
        .collect();
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        exprs(panel, &mut found);
    }
    assert!(found.len() >= 9, "{found:?}");
    let mut used = BTreeSet::new();
    for (title, expr) in &found {
        let names = metric_names(expr, &histograms);
        assert!(!names.is_empty(), "{title}: {expr} names no logbus metric");
        for name in names {
            assert!(
                known.contains(name.as_str()),
                "{title}: unknown {name} in {expr}"
            );
            used.insert(name);
        }
    }
    // Both services are on it, with what the alerts of docs/operations.md are about.
    for needed in [
        api::REQUESTS,
        api::REQUEST_SECONDS,
        api::QUERY_SECONDS,
        api::CACHE_HITS,
        ingest::EVENTS_IN,
        ingest::CONSUMER_LAG_TOTAL,
        ingest::DEAD_LETTERS,
        ingest::PAUSED,
        ingest::FLUSH_SECONDS,
    ] {
        assert!(used.contains(needed), "no panel shows {needed}");
    }
}

#[test]
fn expressions_are_reduced_to_metric_names() {
    let histograms = BTreeSet::from(["logbus_api_request_duration_seconds"]);
    let expr = "histogram_quantile(0.99, sum by (le) (rate(logbus_api_request_duration_seconds_bucket[5m]))) / on() logbus_x_count";
    assert_eq!(
        metric_names(expr, &histograms),
        ["logbus_api_request_duration_seconds", "logbus_x_count"]
    );
    let parsed = samples("# HELP a b\nm_total{route=\"/a\",status=\"200\"} 3\nn 1.5\n");
    assert_eq!(total(&parsed, "m_total", &[("status", "200")]), 3.0);
    assert_eq!(total(&parsed, "m_total", &[("status", "500")]), 0.0);
    assert_eq!(total(&parsed, "n", &[]), 1.5);
}
