//! Pagination of the lists: `p`/`page_size` inside a bounded window, or a keyset cursor on
//! `(created_at, event_id)` for reading further.
//!
//! An offset page costs ClickHouse the offset's rows as well as the page's, so offsets are
//! capped at [`MAX_WINDOW`] rows (`(p - 1) * page_size + page_size`), as search engines cap
//! theirs; a cursor names the last row of a page and the next page starts strictly after it,
//! which costs the same at any depth. The cursor is opaque to clients: hex of the row's
//! `created_at` (4 bytes), `event_id` (16) and position in the result (8), so that the
//! display `id` of the items keeps counting across cursor pages.

use utoipa::IntoParams;
use uuid::Uuid;

use super::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, Params};
use crate::error::BadInput;

/// Most rows an offset page may reach: `p * page_size` at most this.
pub const MAX_WINDOW: u64 = 10_000;

/// Where a page starts: after the last row of the previous page, in list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: u32,
    pub event_id: Uuid,
    /// How many rows come before the next page (the last row's 1-based position).
    pub position: u64,
}

impl Cursor {
    const BYTES: usize = 4 + 16 + 8;

    /// The opaque string form sent as `next_cursor`.
    pub fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(Self::BYTES);
        bytes.extend_from_slice(&self.created_at.to_be_bytes());
        bytes.extend_from_slice(self.event_id.as_bytes());
        bytes.extend_from_slice(&self.position.to_be_bytes());
        hex::encode(bytes)
    }

    pub fn decode(text: &str) -> Result<Cursor, BadInput> {
        let bytes = hex::decode(text.trim()).map_err(|_| BadInput::InvalidCursor)?;
        if bytes.len() != Self::BYTES {
            return Err(BadInput::InvalidCursor);
        }
        let (created_at, rest) = bytes.split_at(4);
        let (event_id, position) = rest.split_at(16);
        Ok(Cursor {
            created_at: u32::from_be_bytes(created_at.try_into().expect("4 bytes")),
            event_id: Uuid::from_slice(event_id).expect("16 bytes"),
            position: u64::from_be_bytes(position.try_into().expect("8 bytes")),
        })
    }
}

/// The cursor parameter of the lists, as the OpenAPI document describes it.
#[derive(Debug, Clone, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CursorParam {
    /// Opaque: the `next_cursor` of the previous page. When given, the page starts right
    /// after that page's last row and `p` is ignored; any depth costs the same. Absent: `p`.
    #[param(value_type = Option<String>, pattern = "^[0-9a-fA-F]{56}$")]
    pub cursor: String,
}

/// Which page of a list to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pagination {
    /// `p`/`page_size`, inside the window.
    Offset(Page),
    /// The `page_size` rows after `after`.
    After { after: Cursor, page_size: u64 },
}

impl Pagination {
    /// A `cursor` wins over `p`; an offset page beyond [`MAX_WINDOW`] is refused, naming the
    /// cursor as the way further.
    pub fn from_params(params: &Params) -> Result<Self, BadInput> {
        let page = Page::from_params(params);
        if let Some(cursor) = params.get("cursor").filter(|c| !c.trim().is_empty()) {
            return Ok(Pagination::After {
                after: Cursor::decode(cursor)?,
                page_size: page.page_size,
            });
        }
        if page.page.saturating_mul(page.page_size) > MAX_WINDOW {
            return Err(BadInput::BeyondWindow { max: MAX_WINDOW });
        }
        Ok(Pagination::Offset(page))
    }

    pub fn page_size(&self) -> u64 {
        match self {
            Pagination::Offset(page) => page.page_size,
            Pagination::After { page_size, .. } => *page_size,
        }
    }

    /// Rows before the page's first row.
    pub fn skipped(&self) -> u64 {
        match self {
            Pagination::Offset(page) => page.offset(),
            Pagination::After { after, .. } => after.position,
        }
    }

    /// The page number to echo: `p`, or for a cursor the page the first row would be on with
    /// this page size. A cursor is the client's to forge, its position included: saturating,
    /// so that the largest one echoes the last page instead of overflowing.
    pub fn page(&self) -> u64 {
        match self {
            Pagination::Offset(page) => page.page,
            Pagination::After { after, page_size } => {
                (after.position / page_size).saturating_add(1)
            }
        }
    }
}

// Both defaults are the offset pages' own.
const _: () = assert!(DEFAULT_PAGE_SIZE <= MAX_PAGE_SIZE && MAX_PAGE_SIZE <= MAX_WINDOW);

#[cfg(test)]
mod tests {
    use super::*;

    fn pagination(q: &str) -> Result<Pagination, BadInput> {
        Pagination::from_params(&Params::parse(Some(q)).expect("parses"))
    }

    #[test]
    fn offsets_stop_at_the_window() {
        assert!(matches!(pagination(""), Ok(Pagination::Offset(_))));
        assert!(pagination("p=100&page_size=100").is_ok());
        assert!(pagination("p=500").is_ok(), "500 pages of 20");
        assert_eq!(
            pagination("p=101&page_size=100"),
            Err(BadInput::BeyondWindow { max: MAX_WINDOW })
        );
        assert!(pagination("p=501").is_err());
        assert!(pagination("p=9223372036854775807&page_size=100").is_err());
    }

    /// Found by the `query_string` fuzz target: a forged cursor at the last position with
    /// pages of one row overflowed the echoed page number.
    #[test]
    fn the_largest_position_echoes_the_last_page() {
        let cursor = Cursor {
            created_at: 1_700_000_000,
            event_id: Uuid::nil(),
            position: u64::MAX,
        };
        let page =
            pagination(&format!("cursor={}&page_size=1", cursor.encode())).expect("a cursor page");
        assert_eq!(page.page(), u64::MAX);
        assert_eq!(page.skipped(), u64::MAX);
    }

    #[test]
    fn cursors_round_trip_and_win_over_p() {
        let cursor = Cursor {
            created_at: 1_700_000_000,
            event_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            position: 123_456,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        let q = format!("p=100000&page_size=50&cursor={}", cursor.encode());
        let page = pagination(&q).expect("a cursor page");
        assert_eq!(
            page,
            Pagination::After {
                after: cursor,
                page_size: 50
            }
        );
        assert_eq!(page.skipped(), 123_456);
        assert_eq!(page.page(), 123_456 / 50 + 1);
        for bad in ["zz", "00", &cursor.encode()[2..]] {
            assert_eq!(
                pagination(&format!("cursor={bad}")),
                Err(BadInput::InvalidCursor)
            );
        }
    }
}
