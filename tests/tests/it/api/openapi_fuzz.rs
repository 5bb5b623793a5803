//! schemathesis over the API's own `/openapi.json` (issue 15, "and keep it so"): generated
//! requests to every operation find no 5xx, and every answer matches the document (schema,
//! status, content type) and is new-api's envelope (`tests/schemathesis/hooks.py`).
//!
//! Every operation but the retention delete runs as the admin; the delete runs with bad
//! credentials only, so that nothing can be deleted: each of its answers must be the 401, and
//! the rows are all there afterwards. The token endpoint's `key` is drawn half the time from
//! the seeded keys (enabled, disabled, a banned owner's), so that its answers are not all 401.
//! A run fails on schemathesis's warnings that mean a broken document or no authenticated
//! request (`missing_auth`, `unresolvable_reference`). Bounded and deterministic: a fixed
//! seed, a fixed number of examples per operation, no example database, and a hard time limit
//! on the fuzzer.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use logbus_devstack::paths;

use crate::support::api::*;
use crate::support::{Scratch, heavy_test};

const BASE: i64 = 1_700_000_000;
const SEED: u64 = 15;
const MAX_EXAMPLES: u32 = 30;
/// Kills the fuzzer if it runs past this (a run takes well under a minute).
const TIME_LIMIT: Duration = Duration::from_secs(300);
const DELETE: &str = "DELETE /api/log/";
/// The live tails stream until the client goes: a fuzzer waiting for their end would time out
/// on every valid request. Their parsing is the list's (fuzzed there); `api::tail` tests them.
const TAILS: [&str; 2] = ["GET /api/log/tail", "GET /api/log/self/tail"];
const CHECKS: &str = "not_a_server_error,response_schema_conformance,status_code_conformance,\
                      content_type_conformance,envelope";

/// The schemathesis CLI of the dev stack's venv (`make install` puts it there).
fn schemathesis() -> PathBuf {
    paths::installed(paths::devstack_dir().join("venv/bin/schemathesis"))
        .unwrap_or_else(|e| panic!("schemathesis for the OpenAPI fuzz test: {e}"))
}

/// The token of the banned user (whose owner check answers 403).
const BANNED_KEY: &str = "sk-mallorykey000000000000000000003";

/// The configuration both runs share (schemathesis.toml).
fn config_text() -> String {
    format!(
        r#"
[warnings]
fail-on = ["missing_auth", "unresolvable_reference"]

[dictionaries.token_keys]
values = ["{ALICE_KEY}", "{DISABLED_KEY}", "{BANNED_KEY}"]

[[operations]]
include-name = "GET /api/log/token"
parameters = {{ "query.key" = {{ dictionary = "token_keys", probability = 0.5 }} }}

# Bad credentials only: every answer is a 401 by design.
[[operations]]
include-name = "{DELETE}"
warnings = {{ fail-on = ["unresolvable_reference"] }}
"#
    )
}

/// Runs `schemathesis run` over the API's document with `args`, output in `scratch`; panics
/// with that output unless it passes.
async fn fuzz(schemathesis: &Path, api: &Api, scratch: &Path, run: &str, args: &[&str]) {
    let config = scratch.join("schemathesis.toml");
    std::fs::write(&config, config_text()).expect("write schemathesis.toml");
    let log = scratch.join(format!("{}.log", run.replace(' ', "_")));
    let output = std::fs::File::create(&log).expect("create fuzz log");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(schemathesis)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/openapi.json", api.base))
        .args(["--seed", &SEED.to_string()])
        .args(["--max-examples", &MAX_EXAMPLES.to_string()])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30", "--workers", "1", "--no-color"])
        // Test credentials only: the reproductions show the real values (`keyword` too).
        .args(["--output-sanitize", "false"])
        .args(args)
        .env(
            "SCHEMATHESIS_HOOKS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemathesis/hooks.py"),
        )
        // Its reports and caches stay in the scratch folder, never in the work tree.
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("fuzz log"))
        .stderr(output)
        .kill_on_drop(true)
        .spawn()
        .expect("start schemathesis");
    let status = tokio::time::timeout(TIME_LIMIT, child.wait()).await;
    let elapsed = started.elapsed();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    match status {
        Ok(Ok(status)) if status.success() => {
            let cases = text.lines().find(|line| line.contains(" generated, "));
            let cases = cases.unwrap_or("(no count printed)").trim();
            eprintln!("schemathesis {run}: passed in {elapsed:.1?}: {cases}");
        }
        Ok(Ok(status)) => panic!("schemathesis {run} found problems ({status}):\n{text}"),
        Ok(Err(e)) => panic!("schemathesis {run}: {e}"),
        Err(_) => panic!("schemathesis {run} ran past {TIME_LIMIT:?} (killed):\n{text}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_matches_its_openapi_document_under_fuzzing() {
    let schemathesis = schemathesis();
    // The fuzzer is a CPU-bound process of its own.
    let _heavy = heavy_test().await;
    // Thousands of fuzzed credentials from one address: the failed-authentication budget
    // (tested in `api::auth`) would turn the delete's 401s into 429s.
    let api = Api::start_with(|config| config.throttle.auth_failures_per_minute = 0).await;
    let recent = now() - 120;
    let mut events = Vec::new();
    for (i, caller) in [ALICE, BOB, ADMIN].into_iter().enumerate() {
        let i = i as i64;
        events.push(log(BASE + i, caller));
        events.push(log(BASE + 86_400 + i, caller));
        events.push(log(recent + i, caller));
    }
    events[1].log_type = 5;
    events[4].model_name = Some("claude-3".into());
    let mut identities = identities();
    identities.push(token(41, BANNED.id, "mallory-token", BANNED_KEY, 1));
    api.seed(&events, &identities).await;
    let scratch = Scratch::new("openapi_fuzz");

    let admin_id = ADMIN.id.to_string();
    let authorization = format!("Authorization: {}", ADMIN.token);
    let user = format!("New-Api-User: {admin_id}");
    fuzz(
        &schemathesis,
        &api,
        scratch.path(),
        "as the admin",
        &[
            "--exclude-name",
            DELETE,
            "--exclude-name",
            TAILS[0],
            "--exclude-name",
            TAILS[1],
            "--checks",
            CHECKS,
            "-H",
            &authorization,
            "-H",
            &user,
        ],
    )
    .await;

    let checks = format!("{CHECKS},refused_unauthenticated");
    fuzz(
        &schemathesis,
        &api,
        scratch.path(),
        "of the delete with bad credentials",
        &[
            "--include-name",
            DELETE,
            "--checks",
            &checks,
            "-H",
            "Authorization: not-an-access-token",
            "-H",
            &user,
        ],
    )
    .await;
    assert_eq!(
        api.db.count("SELECT count() FROM logs").await,
        events.len() as u64,
        "the delete with bad credentials removed rows"
    );

    api.finish().await;
}
