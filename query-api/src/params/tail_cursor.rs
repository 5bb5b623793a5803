//! The position of a row in the tail: when it reached ClickHouse (`ingested_at`, milliseconds)
//! and its `event_id`, compared as ClickHouse compares them, so that the order of the tail's
//! queries (`ORDER BY ingested_at, event_id`) and the order of [`TailCursor`] are one order.
//! Sent as each event's SSE `id`, taken back from `Last-Event-ID`.

use std::cmp::Ordering;
use std::fmt;

use axum::http::{HeaderMap, HeaderName};
use utoipa::IntoParams;
use uuid::Uuid;

use crate::error::BadInput;

/// A row's place in the tail's order. Opaque to clients: `<ms>-<32 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailCursor {
    /// `toUnixTimestamp64Milli(ingested_at)`.
    pub ingested_ms: i64,
    pub event_id: Uuid,
}

/// ClickHouse orders a UUID by its second half first, each half a big-endian integer (it
/// stores the UUID as two UInt64, low word first): `00..00-0001-0000-00..00` sorts before
/// `00..00-0000-0000-00..01`. Checked against the engine by `api::tail`.
fn clickhouse_uuid_key(id: &Uuid) -> (u64, u64) {
    let (high, low) = id.as_u64_pair();
    (low, high)
}

impl Ord for TailCursor {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ingested_ms.cmp(&other.ingested_ms).then_with(|| {
            clickhouse_uuid_key(&self.event_id).cmp(&clickhouse_uuid_key(&other.event_id))
        })
    }
}

impl PartialOrd for TailCursor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl TailCursor {
    /// The position before every row that reached ClickHouse after `ingested_ms`.
    pub fn at(ingested_ms: i64) -> Self {
        Self {
            ingested_ms,
            // The largest UUID in ClickHouse's order: every row of that millisecond is at or
            // before it, so "after" it means "after the millisecond".
            event_id: Uuid::max(),
        }
    }

    /// Reads a cursor written by [`fmt::Display`]; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let (ms, id) = text.trim().split_once('-')?;
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) || id.len() != 32 {
            return None;
        }
        let event_id = Uuid::try_parse(id).ok()?;
        Some(Self {
            ingested_ms: ms.parse().ok()?,
            event_id,
        })
    }
}

impl fmt::Display for TailCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ingested_ms, self.event_id.simple())
    }
}

/// The header a reconnecting client resumes with (what the OpenAPI document lists).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct LastEventId {
    /// The `id` of the last event received: the stream resumes after it, without gaps or
    /// duplicates (within `--tail-resume-horizon-secs`). Absent or blank: new logs only.
    #[param(rename = "Last-Event-ID")]
    pub last_event_id: Option<String>,
}

impl LastEventId {
    const HEADER: HeaderName = HeaderName::from_static("last-event-id");

    /// The cursor to resume after; a header that is not one of our ids is refused (ignoring
    /// it would silently drop what the client missed).
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<TailCursor>, BadInput> {
        let Some(value) = headers.get(Self::HEADER) else {
            return Ok(None);
        };
        let text = value.to_str().map_err(|_| BadInput::InvalidLastEventId)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        TailCursor::parse(text)
            .map(Some)
            .ok_or(BadInput::InvalidLastEventId)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn last_event_id_is_optional_but_never_ignored_when_wrong() {
        let resume = |value: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(LastEventId::HEADER, HeaderValue::from_static(value));
            }
            LastEventId::from_headers(&headers).map(|c| c.map(|c| c.ingested_ms))
        };
        assert_eq!(resume(None), Ok(None));
        assert_eq!(resume(Some("  ")), Ok(None));
        assert_eq!(
            resume(Some("17-0123456789abcdef0123456789abcdef")),
            Ok(Some(17))
        );
        assert_eq!(resume(Some("garbage")), Err(BadInput::InvalidLastEventId));
    }

    fn cursor(ms: i64, id: &str) -> TailCursor {
        TailCursor {
            ingested_ms: ms,
            event_id: Uuid::parse_str(id).expect("a uuid"),
        }
    }

    #[test]
    fn uuids_compare_as_clickhouse_compares_them() {
        // Each pair as `SELECT toUUID(a) < toUUID(b)` answers on ClickHouse 26.9.
        let less = [
            (
                "00000000-0000-0001-0000-000000000000",
                "00000000-0000-0000-0000-000000000001",
            ),
            (
                "01000000-0000-0000-0000-000000000000",
                "00000000-0000-0000-0000-000000000002",
            ),
            (
                "00000000-0000-0000-0000-000000000002",
                "00000000-0000-0000-0100-000000000000",
            ),
            (
                "00000000-0000-0000-0000-000000000001",
                "00000000-0000-0000-0000-000000000100",
            ),
        ];
        for (a, b) in less {
            assert!(cursor(5, a) < cursor(5, b), "{a} < {b}");
        }
        assert!(cursor(4, "ffffffff-ffff-ffff-ffff-ffffffffffff") < cursor(5, less[0].0));
        assert!(cursor(5, less[3].1) < TailCursor::at(5));
        assert!(TailCursor::at(5) < cursor(6, "00000000-0000-0000-0000-000000000000"));
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let c = cursor(1_733_290_000_123, "0123456789abcdef0123456789abcdef");
        let text = c.to_string();
        assert_eq!(text, "1733290000123-0123456789abcdef0123456789abcdef");
        assert_eq!(TailCursor::parse(&text), Some(c));
        for bad in [
            "",
            "-0123456789abcdef0123456789abcdef",
            "12-0123",
            "-5-0123456789abcdef0123456789abcdef",
            "1x-0123456789abcdef0123456789abcdef",
            "99999999999999999999-0123456789abcdef0123456789abcdef",
            "12-0123456789abcdef0123456789abcdeg",
            "12-01234567-89ab-cdef-0123-456789abcdef",
        ] {
            assert_eq!(TailCursor::parse(bad), None, "{bad:?}");
        }
    }
}
