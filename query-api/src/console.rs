//! The web console at `/ui/`: static files compiled into the binary (`query-api/ui/`, no
//! build step), which talk to the public API only, with the credentials the user signs in
//! with. It has no route of its own beyond its files and so no power the API does not give
//! the signed-in user (docs/api.md, "Web console").
//!
//! The files are served under a Content-Security-Policy that allows scripts, styles and
//! connections to this origin only: a row's content, shown as text, could not run a script
//! even if it were ever put into the page as markup.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::state::AppState;

/// Where the console is served.
pub const PREFIX: &str = "/ui/";

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its path under `/ui/`, its media type and its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../ui/", $path)),
        }
    };
}

/// Every file of `query-api/ui/` (a test checks that none is missing).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("charts.js", "text/javascript; charset=utf-8"),
    asset!("tail.js", "text/javascript; charset=utf-8"),
    asset!(
        "vendor/uplot/uPlot.iife.min.js",
        "text/javascript; charset=utf-8"
    ),
    asset!("vendor/uplot/uPlot.min.css", "text/css; charset=utf-8"),
    asset!("vendor/uplot/LICENSE", "text/plain; charset=utf-8"),
];

fn asset(path: &str) -> Option<&'static Asset> {
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS.iter().find(|asset| asset.path == path)
}

async fn serve(path: Option<Path<String>>) -> Response {
    let path = path.map(|Path(path)| path).unwrap_or_default();
    let Some(asset) = asset(&path) else {
        return ApiError::NotFound.into_response();
    };
    (
        [
            (CONTENT_TYPE, asset.content_type),
            (CONTENT_SECURITY_POLICY, CSP),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (X_FRAME_OPTIONS, "DENY"),
            (REFERRER_POLICY, "no-referrer"),
        ],
        asset.body,
    )
        .into_response()
}

/// The console's routes: its files under `/ui/`, and `/ui` sent there (relative links
/// resolve against the slash).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent(PREFIX) }))
        .route(PREFIX, get(|| serve(None)))
        .route("/ui/{*path}", get(|path: Path<String>| serve(Some(path))))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn files_under(dir: &Path, base: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("ui/ is readable") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                files_under(&path, base, found);
            } else {
                let relative = path.strip_prefix(base).expect("under ui/");
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_ui_directory_is_served() {
        let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut found = Vec::new();
        files_under(&base, &base, &mut found);
        for file in &found {
            assert!(asset(file).is_some(), "ui/{file} is not in ASSETS");
        }
        assert_eq!(found.len(), ASSETS.len(), "ASSETS lists a file ui/ lacks");
    }

    #[test]
    fn the_root_is_the_page_and_unknown_files_are_not_found() {
        assert_eq!(asset("").map(|a| a.path), Some("index.html"));
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("vendor/").is_none());
    }
}
