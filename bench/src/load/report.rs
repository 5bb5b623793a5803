//! The load's section of the results file.

use super::LoadRun;

/// The results file's section for `r`.
pub(crate) fn report_section(r: &LoadRun) -> String {
    let mut out = format!(
        "\n## Load: {} connections for {} s while ingest runs\n\n",
        r.connections,
        r.secs.round()
    );
    if let Some(error) = &r.error {
        out.push_str(&format!(
            "The measurement failed: {}\n",
            error.replace('\n', " ")
        ));
        if r.endpoints.is_empty() {
            return out;
        }
    }
    let requests = r.requests();
    out.push_str(&format!(
        "{conns} concurrent clients, one HTTP/1.1 keep-alive connection each ({opened} \
         connections opened; {min}–{max} of theirs established to the API in samples taken \
         once a second), loop for {secs:.1} s over a \
         weighted mix of new-api's log endpoints on the query data set, while a `logbus-ingest` \
         child writes newly generated events into the same database at {rate:.0} events/s \
         ({source}). Latencies are of the successful requests, measured by the client; an error \
         is a non-200 answer, a transport error or an envelope whose `success` is not true.\n\n\
         | endpoint | share of the mix | requests | errors | p50 | p99 |\n|---|---|---|---|---|---|\n",
        conns = r.connections,
        opened = r.opened,
        min = r.open_min,
        max = r.open_max,
        secs = r.secs,
        rate = r.target_rate,
        source = r.rate_source,
    ));
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms"));
    for e in &r.endpoints {
        out.push_str(&format!(
            "| {} | {}% | {} | {} | {} | {} |\n",
            e.label,
            e.weight,
            e.requests,
            e.errors,
            ms(e.p50_ms),
            ms(e.p99_ms)
        ));
    }
    out.push_str(&format!(
        "| **all** | 100% | {requests} = **{:.0} requests/s** | **{}** (target 0) | | |\n\n",
        requests as f64 / r.secs.max(1e-9),
        r.errors()
    ));
    let per_sec = |n: u64| n as f64 / r.secs.max(1e-9);
    let behind = r.published.saturating_sub(r.ingested);
    out.push_str(&format!(
        "| ingest during the load | value |\n|---|---|\n\
         | target rate | {:.0} events/s ({}) |\n\
         | published over the window | {} events = {:.0} events/s ({:.2} of the target) |\n\
         | counted in ClickHouse over the window | {} rows = {:.0} rows/s |\n\
         | not yet queryable at the window's end | {} events ({:.1} s of publishing) |\n\
         | every event published in the window queryable | {} |\n",
        r.target_rate,
        r.rate_source,
        r.published,
        per_sec(r.published),
        crate::fraction(per_sec(r.published), r.target_rate),
        r.ingested,
        per_sec(r.ingested),
        behind,
        behind as f64 / r.target_rate.max(1e-9),
        r.caught_up_secs.map_or_else(
            || format!("not within {} s of the window's end", r.catch_up_limit_secs),
            |s| format!("{s:.1} s after the window's end")
        ),
    ));
    let errors: Vec<_> = r
        .endpoints
        .iter()
        .filter_map(|e| e.first_error.as_ref().map(|m| (e.label, m)))
        .collect();
    if !errors.is_empty() {
        out.push_str("\nFirst error of each endpoint:\n\n");
        for (label, m) in errors {
            out.push_str(&format!("- {label}: `{}`\n", m.replace(['\n', '`'], " ")));
        }
    }
    out.push_str(
        "\nWhat bounds these figures: the clients, the API, the ingest worker, Kafka and the \
         ClickHouse front share the machine's 2 cores. The dev ClickHouse front (chfront over \
         chDB) runs up to 8 queries at once, one pooled chDB connection each (as a \
         clickhouse-server runs them concurrently), and queues the rest: the clients' requests \
         (one or two ClickHouse queries each) and the worker's event-id look-ups, batch intents \
         and inserts share those connections and the cores, so with more clients than \
         connections a request's latency includes its wait for one. These figures are the dev \
         front's on 2 cores, not logbus's ceiling.\n",
    );
    out
}
