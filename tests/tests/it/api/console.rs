//! The web console (`/ui/`, issue 13) in a real browser: headless Chromium (Debian's
//! `chromium`, which `make install` installs) loads the console, signs in with an access
//! token and user id, draws the usage chart from the series endpoint and shows the rows
//! published to Kafka afterwards in its live tail, each once; a user's console shows their
//! rows only, without the admin's columns. No script error and no Content-Security-Policy
//! violation happens on the way. Screenshots are written to `target/tmp/console-*.png`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::StreamExt;
use logbus_projections::events::LogEvent;
use serde::de::DeserializeOwned;

use crate::support::api::*;
use crate::support::{Scratch, eventually, heavy_test};

/// How long the console may take to show what the test waits for.
const SHOWN: Duration = Duration::from_secs(60);

/// Errors and CSP violations of the page, collected from its first script on.
const WATCH_ERRORS: &str = "window.__consoleErrors = [];\
    addEventListener('error', (e) => __consoleErrors.push('error: ' + e.message));\
    addEventListener('unhandledrejection', (e) => __consoleErrors.push('rejection: ' + e.reason));\
    document.addEventListener('securitypolicyviolation', (e) =>\
        __consoleErrors.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI));";

fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .expect("Chromium on PATH: `make install` installs Debian's chromium package")
}

/// Where a screenshot goes: `target/tmp/`, which cargo creates for integration tests.
fn screenshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("console-{name}.png"))
}

struct Console {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
}

impl Console {
    async fn launch(scratch: &Scratch) -> Self {
        let config = BrowserConfig::builder()
            .chrome_executable(chromium())
            .new_headless_mode()
            // The tests may run as root (CI), where Chromium's sandbox refuses to start.
            .no_sandbox()
            .arg("--disable-dev-shm-usage")
            .arg("--lang=en-US")
            .user_data_dir(scratch.path().join("chromium"))
            .window_size(1400, 1100)
            .launch_timeout(Duration::from_secs(60))
            .build()
            .expect("a browser config");
        let (browser, mut events) = Browser::launch(config).await.expect("Chromium starts");
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Self { browser, handler }
    }

    /// A new tab on `url`, watching for errors from its first script.
    async fn open(&self, url: &str) -> Page {
        let page = self.browser.new_page("about:blank").await.expect("a tab");
        page.evaluate_on_new_document(WATCH_ERRORS)
            .await
            .expect("the error watch installed");
        page.goto(url).await.expect("the console loads");
        page
    }

    async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

async fn eval<T: DeserializeOwned>(page: &Page, script: &str) -> T {
    page.evaluate(script)
        .await
        .unwrap_or_else(|e| panic!("{script}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("{script}: {e}"))
}

/// Types `text` into the field `selector`, as a user would.
async fn fill(page: &Page, selector: &str, text: &str) {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("{selector} focused: {e}"))
        .type_str(text)
        .await
        .unwrap_or_else(|e| panic!("{selector} typed into: {e}"));
}

/// The headings of the tail's table.
async fn tail_headings(page: &Page) -> Vec<String> {
    eval(
        page,
        "Array.from(document.querySelectorAll('#tail-head th')).map((th) => th.textContent)",
    )
    .await
}

async fn sign_in(page: &Page, caller: Caller) {
    fill(page, "#user-id", &caller.id.to_string()).await;
    fill(page, "#access-token", caller.token).await;
    page.find_element("#signin button[type=submit]")
        .await
        .expect("the sign-in button")
        .click()
        .await
        .expect("clicked");
    let state = "document.getElementById('tail-status').dataset.state";
    let error = "document.getElementById('signin-error').textContent";
    eventually("the console's tail to be live", SHOWN, || async {
        let signin_error: String = eval(page, error).await;
        assert_eq!(signin_error, "", "sign-in refused");
        (eval::<String>(page, state).await == "live").then_some(())
    })
    .await;
}

/// The request ids of the tail's rows, newest first.
async fn shown_request_ids(page: &Page) -> Vec<String> {
    eval(
        page,
        "Array.from(document.querySelectorAll('#tail-rows tr')).map((tr) => tr.dataset.requestId)",
    )
    .await
}

async fn wait_for_rows(page: &Page, want: &BTreeSet<String>) -> Vec<String> {
    eventually(
        "the published rows in the console's tail",
        SHOWN,
        || async {
            let shown = shown_request_ids(page).await;
            (shown.len() >= want.len()).then_some(shown)
        },
    )
    .await
}

async fn assert_no_page_errors(page: &Page) {
    let errors: Vec<String> = eval(page, "window.__consoleErrors").await;
    assert!(errors.is_empty(), "the page reported {errors:?}");
}

#[tokio::test]
async fn the_console_signs_in_charts_usage_and_tails_rows_published_to_kafka() {
    let _heavy = heavy_test().await;
    let scratch = Scratch::new("console");
    let api = Api::start_with(|config| {
        config.tail.tail_poll_ms = 100;
    })
    .await;
    // Usage for the chart, published before anyone signs in: not part of any tail.
    let earlier = vec![log(now() - 120, ALICE), log(now() - 60, BOB)];
    api.seed(&earlier, &identities()).await;

    let console = Console::launch(&scratch).await;
    let url = format!("{}/ui/", api.base);
    let admin = console.open(&url).await;
    sign_in(&admin, ADMIN).await;
    let headings = tail_headings(&admin).await;
    assert!(headings.iter().any(|h| h == "user") && headings.iter().any(|h| h == "ip"));
    eventually("the usage chart", SHOWN, || async {
        eval::<bool>(
            &admin,
            "document.querySelector('#usage-chart canvas') !== null",
        )
        .await
        .then_some(())
    })
    .await;
    let totals: String = eval(
        &admin,
        "document.getElementById('usage-totals').textContent",
    )
    .await;
    assert!(totals.starts_with("2 requests"), "{totals:?}");

    let alice = console.open(&url).await;
    sign_in(&alice, ALICE).await;

    let published: Vec<LogEvent> = (0..8)
        .map(|i| log(now(), if i % 2 == 0 { ALICE } else { BOB }))
        .collect();
    api.seed(&published, &[]).await;

    let want = request_ids(&published);
    let shown = wait_for_rows(&admin, &want).await;
    assert_eq!(shown.len(), want.len(), "each row once: {shown:?}");
    assert_eq!(shown.iter().cloned().collect::<BTreeSet<_>>(), want);
    let status: String = eval(&admin, "document.getElementById('tail-status').textContent").await;
    assert!(status.contains("8 rows received"), "{status:?}");

    let alice_want = request_ids(published.iter().filter(|l| l.user_id == ALICE.id));
    let alice_shown = wait_for_rows(&alice, &alice_want).await;
    assert_eq!(
        alice_shown.iter().cloned().collect::<BTreeSet<_>>(),
        alice_want
    );
    let alice_headings = tail_headings(&alice).await;
    assert!(
        !alice_headings
            .iter()
            .any(|h| h == "ip" || h == "user" || h == "channel")
    );

    for (page, name) in [(&admin, "admin"), (&alice, "user")] {
        assert_no_page_errors(page).await;
        let path = screenshot_path(name);
        page.save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
            .await
            .expect("a screenshot");
        println!("console screenshot: {}", path.display());
    }
    // The credentials live in the tab's session storage, never in local storage.
    let stored: usize = eval(&admin, "localStorage.length").await;
    assert_eq!(stored, 0);
    console.close().await;
    api.finish().await;
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let api = Api::start().await;
    let response = api
        .http
        .get(format!("{}/ui/", api.base))
        .send()
        .await
        .expect("the page");
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let page = response.text().await.expect("the page");
    assert!(
        page.contains("<script type=\"module\" src=\"app.js\">"),
        "{page}"
    );

    let script = api
        .http
        .get(format!("{}/ui/vendor/uplot/uPlot.iife.min.js", api.base))
        .send()
        .await
        .expect("the chart library");
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );

    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/ui", api.base))
        .send()
        .await
        .expect("the bare prefix");
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/ui/");

    let (status, body) = api.get("/ui/missing.js", None).await;
    assert_eq!(
        (status, body["success"].clone()),
        (404, false.into()),
        "{body}"
    );
    api.finish().await;
}
