//! The export measurement: `GET /api/log/export` of the whole query data set (CSV, admin),
//! read as fast as the bench can, while the API's peak resident set (`VmHWM`) is read after
//! the transfer (it covers the whole life of the process, so no sampling is needed).

use std::time::Instant;

use anyhow::{Context, Result, ensure};

use crate::queries::Http;

/// What one export measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct Export {
    /// Data rows in the file (lines less the header).
    pub rows: u64,
    pub bytes: u64,
    pub secs: f64,
    /// The API process's peak RSS before and after the export, bytes.
    pub rss_before: u64,
    pub rss_after: u64,
    pub error: Option<String>,
}

impl Export {
    pub(crate) fn rate(&self) -> f64 {
        self.rows as f64 / self.secs.max(1e-9)
    }
}

/// Exports every row through the API at `http` (process `pid`) and counts the lines as they
/// arrive (CSV lines end in CRLF; content line breaks inside quotes are counted apart by
/// counting CRLF only where quotes are balanced).
pub(crate) async fn measure(http: &Http, pid: u32) -> Result<Export> {
    let peak = |pid| crate::logbus::proc_usage(pid).map_or(0, |(hwm, _)| hwm);
    let rss_before = peak(pid);
    let started = Instant::now();
    let mut response = http
        .client
        .get(format!("{}/api/log/export", http.base))
        .header("Authorization", crate::data::ADMIN_ACCESS_TOKEN)
        .header("New-Api-User", http.admin_id.to_string())
        .send()
        .await
        .context("export request")?;
    ensure!(
        response.status().is_success(),
        "export: {}",
        response.status()
    );
    let (mut bytes, mut lines, mut quoted, mut last) = (0u64, 0u64, false, 0u8);
    while let Some(chunk) = response.chunk().await.context("export body")? {
        bytes += chunk.len() as u64;
        for &b in chunk.iter() {
            match b {
                b'"' => quoted = !quoted,
                b'\n' if !quoted && last == b'\r' => lines += 1,
                _ => {}
            }
            last = b;
        }
    }
    Ok(Export {
        rows: lines.saturating_sub(1),
        bytes,
        secs: started.elapsed().as_secs_f64(),
        rss_before,
        rss_after: peak(pid),
        error: None,
    })
}
