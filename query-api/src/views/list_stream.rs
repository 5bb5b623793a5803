//! A list of logs in the success envelope, encoded a row at a time: byte for byte what
//! `Json(Envelope::ok(items))` writes, without holding the list (`/api/log/token` answers up to
//! 1000 full rows, each with up to 512 KiB of content and `other`).

use bytes::Bytes;
use logbus_projections::rows::LogRow;

use super::{LogItem, View};

/// The envelope's opening, up to the list's first element.
const OPENING: &[u8] = br#"{"success":true,"message":"","data":["#;
/// The list's and the envelope's ends.
const CLOSING: &[u8] = b"]}";

/// Encodes rows into the envelope's `data` list; [`ListEncoder::take`] hands out what is
/// buffered.
#[derive(Debug)]
pub struct ListEncoder {
    view: View,
    rows: u64,
    buffer: Vec<u8>,
}

impl ListEncoder {
    pub fn new(view: View) -> Self {
        Self {
            view,
            rows: 0,
            buffer: OPENING.to_vec(),
        }
    }

    /// Appends `row` as the list's next item (its `id` is its position, from 1).
    pub fn push(&mut self, row: LogRow) {
        if self.rows > 0 {
            self.buffer.push(b',');
        }
        self.rows += 1;
        let item = LogItem::new(row, self.rows, self.view);
        serde_json::to_writer(&mut self.buffer, &item).expect("a log item always serializes");
    }

    /// Bytes buffered and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn take(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.buffer))
    }

    /// The rest, closing the list and the envelope.
    pub fn finish(mut self) -> Bytes {
        self.buffer.extend_from_slice(CLOSING);
        Bytes::from(self.buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::tests::sample_row;
    use crate::views::{Envelope, items};

    fn row(n: u32) -> LogRow {
        LogRow {
            created_at: 1_700_000_000 + n,
            content: format!("content \"{n}\" ✓ \u{1}"),
            ..sample_row()
        }
    }

    fn encoded(rows: Vec<LogRow>, view: View, chunk: usize) -> Vec<u8> {
        let mut encoder = ListEncoder::new(view);
        let mut out = Vec::new();
        for row in rows {
            encoder.push(row);
            if encoder.buffered() >= chunk {
                out.extend_from_slice(&encoder.take());
            }
        }
        out.extend_from_slice(&encoder.finish());
        out
    }

    #[test]
    fn the_stream_is_byte_for_byte_the_envelope_of_the_list() {
        for count in [0, 1, 2, 17] {
            for view in [View::User, View::Admin] {
                let rows: Vec<LogRow> = (0..count).map(row).collect();
                let whole = serde_json::to_vec(&Envelope::ok(items(rows.clone(), 0, view)))
                    .expect("serializes");
                for chunk in [1, 100, usize::MAX] {
                    assert_eq!(
                        String::from_utf8(encoded(rows.clone(), view, chunk)).expect("utf-8"),
                        String::from_utf8(whole.clone()).expect("utf-8"),
                        "{count} rows, {view:?}, chunks of {chunk}"
                    );
                }
            }
        }
    }
}
