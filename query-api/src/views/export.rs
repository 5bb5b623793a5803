//! The encoding of an export file: log rows as the list shows them (same keys, same view),
//! written as RFC 4180 CSV (the `csv` crate: fields holding commas, quotes or line breaks are
//! quoted, quotes doubled, lines end in CRLF) or as JSON Lines, chunk by chunk, with an
//! optional totals row at the end. Pure: the handler feeds it rows and sends what it returns.

use std::cell::RefCell;
use std::io::Write;

use bytes::Bytes;
use logbus_projections::rows::LogRow;
use serde::Serialize;
use utoipa::ToSchema;

use super::{LogItem, View};

/// The format of an export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ExportFormat {
    /// RFC 4180 CSV with a header line (the default).
    #[default]
    Csv,
    /// One JSON object per line (JSON Lines).
    Jsonl,
}

impl ExportFormat {
    /// The `format` values accepted, as the refusal of another one names them.
    pub const CHOICES: &'static str = "csv, jsonl";

    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(ExportFormat::Csv),
            "jsonl" | "ndjson" => Some(ExportFormat::Jsonl),
            _ => None,
        }
    }

    /// The file-name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8; header=present",
            ExportFormat::Jsonl => "application/x-ndjson; charset=utf-8",
        }
    }
}

/// The CSV columns of the admin view: [`LogItem`]'s keys in its order.
pub const ADMIN_COLUMNS: &[&str] = &[
    "id",
    "event_id",
    "user_id",
    "created_at",
    "type",
    "content",
    "username",
    "token_name",
    "model_name",
    "quota",
    "prompt_tokens",
    "completion_tokens",
    "use_time",
    "is_stream",
    "channel",
    "channel_id",
    "channel_name",
    "token_id",
    "group",
    "ip",
    "other",
    "request_id",
];

/// The columns of `view`: the user view has no `ip`, as its list items have none.
pub fn columns(view: View) -> Vec<&'static str> {
    ADMIN_COLUMNS
        .iter()
        .copied()
        .filter(|c| view == View::Admin || *c != "ip")
        .collect()
}

/// Sums over the exported rows, for the totals row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExportTotals {
    pub rows: u64,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

impl ExportTotals {
    fn add(&mut self, item: &LogItem) {
        self.rows += 1;
        self.quota = self.quota.saturating_add(item.quota);
        self.prompt_tokens = self.prompt_tokens.saturating_add(item.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(item.completion_tokens);
    }
}

/// The JSON Lines totals row: `{"totals":{...}}`, a shape no log line has.
#[derive(Serialize)]
struct TotalsLine<'a> {
    totals: &'a ExportTotals,
}

/// The csv writer's destination, readable and drainable through the writer's `get_ref`
/// (the csv crate offers no `get_mut`).
#[derive(Debug, Default)]
struct Buffer(RefCell<Vec<u8>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.get_mut().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes one export: [`Self::push`] each row, [`Self::take`] the bytes so far whenever
/// [`Self::buffered`] is large enough, [`Self::finish`] at the end.
#[derive(Debug)]
pub struct ExportEncoder {
    format: ExportFormat,
    view: View,
    with_totals: bool,
    totals: ExportTotals,
    csv: csv::Writer<Buffer>,
    /// JSON Lines are written here, CSV records into `csv`.
    lines: Vec<u8>,
}

impl ExportEncoder {
    /// An encoder whose buffer already holds the CSV header (JSON Lines has none).
    pub fn new(format: ExportFormat, view: View, with_totals: bool) -> Self {
        let csv = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::CRLF)
            .from_writer(Buffer::default());
        let mut encoder = ExportEncoder {
            format,
            view,
            with_totals,
            totals: ExportTotals::default(),
            csv,
            lines: Vec::new(),
        };
        if format == ExportFormat::Csv {
            encoder.csv_record(columns(view));
        }
        encoder
    }

    fn csv_record<I>(&mut self, record: I)
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        // Writing into a Vec cannot fail.
        self.csv.write_record(record).expect("write to memory");
    }

    /// Appends `row` as the next log (numbered `rows so far + 1`, like the list's `id`).
    pub fn push(&mut self, row: LogRow) {
        let item = LogItem::new(row, self.totals.rows + 1, self.view);
        self.totals.add(&item);
        match self.format {
            ExportFormat::Csv => self.csv.serialize(&item).expect("write to memory"),
            ExportFormat::Jsonl => {
                serde_json::to_writer(&mut self.lines, &item).expect("write to memory");
                self.lines.push(b'\n');
            }
        }
    }

    /// Bytes written and not yet taken, short of at most the csv writer's own 8 KiB buffer.
    pub fn buffered(&self) -> usize {
        self.csv.get_ref().0.borrow().len() + self.lines.len()
    }

    /// The bytes written since the last call.
    pub fn take(&mut self) -> Bytes {
        self.csv.flush().expect("write to memory");
        let csv = self.csv.get_ref().0.take();
        Bytes::from(if csv.is_empty() {
            std::mem::take(&mut self.lines)
        } else {
            csv
        })
    }

    /// The totals so far.
    pub fn totals(&self) -> ExportTotals {
        self.totals
    }

    /// Appends the totals row if asked for, and returns the remaining bytes.
    pub fn finish(&mut self) -> Bytes {
        if self.with_totals {
            let totals = self.totals;
            match self.format {
                ExportFormat::Csv => {
                    let record: Vec<String> = columns(self.view)
                        .iter()
                        .map(|column| match *column {
                            "id" => "totals".to_owned(),
                            "event_id" => totals.rows.to_string(),
                            "quota" => totals.quota.to_string(),
                            "prompt_tokens" => totals.prompt_tokens.to_string(),
                            "completion_tokens" => totals.completion_tokens.to_string(),
                            _ => String::new(),
                        })
                        .collect();
                    self.csv_record(record);
                }
                ExportFormat::Jsonl => {
                    serde_json::to_writer(&mut self.lines, &TotalsLine { totals: &totals })
                        .expect("write to memory");
                    self.lines.push(b'\n');
                }
            }
        }
        self.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::tests::sample_row;

    fn record_of(item: &serde_json::Value, columns: &[&str]) -> Vec<String> {
        columns
            .iter()
            .map(|c| match &item[*c] {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    fn tricky_rows() -> Vec<LogRow> {
        [
            "a, b",
            "say \"hi\"",
            "line 1\nline 2\r\nline 3",
            "中文，日志\u{1F600}",
            "",
        ]
        .into_iter()
        .map(|content| LogRow {
            content: content.into(),
            ..sample_row()
        })
        .collect()
    }

    #[test]
    fn csv_quotes_as_rfc_4180_and_parses_back_to_the_list_items() {
        for view in [View::Admin, View::User] {
            let mut encoder = ExportEncoder::new(ExportFormat::Csv, view, true);
            for row in tricky_rows() {
                encoder.push(row);
            }
            let mut bytes = encoder.take().to_vec();
            bytes.extend_from_slice(&encoder.finish());
            let text = String::from_utf8(bytes.clone()).expect("UTF-8");
            assert!(
                text.contains("\"say \"\"hi\"\"\""),
                "quotes doubled: {text}"
            );
            assert!(text.contains("\"a, b\""), "commas quoted: {text}");
            assert!(text.ends_with("\r\n"), "CRLF line ends");
            let mut reader = csv::Reader::from_reader(bytes.as_slice());
            let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
            assert_eq!(header, columns(view));
            let records: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.unwrap().iter().map(String::from).collect())
                .collect();
            assert_eq!(records.len(), 6, "5 rows and the totals row");
            for (i, (row, record)) in tricky_rows().into_iter().zip(&records).enumerate() {
                let item = serde_json::to_value(LogItem::new(row, i as u64 + 1, view)).unwrap();
                assert_eq!(*record, record_of(&item, &columns(view)));
                let keys: Vec<&str> = item
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(|k| k.as_str())
                    .collect();
                let mut expected = columns(view);
                expected.sort_unstable();
                assert_eq!(keys, expected, "the columns are the list item's keys");
            }
            let totals = &records[5];
            let at = |c: &str| &totals[columns(view).iter().position(|x| *x == c).unwrap()];
            assert_eq!(at("id"), "totals");
            assert_eq!(at("event_id"), "5");
            assert_eq!(at("quota"), "5");
            assert_eq!(at("username"), "");
        }
    }

    #[test]
    fn jsonl_lines_are_the_list_items_then_the_totals() {
        let mut encoder = ExportEncoder::new(ExportFormat::Jsonl, View::User, true);
        assert_eq!(encoder.buffered(), 0, "JSON Lines has no header");
        for row in tricky_rows() {
            encoder.push(row);
        }
        let text = String::from_utf8(encoder.finish().to_vec()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        for (i, (row, line)) in tricky_rows().into_iter().zip(&lines).enumerate() {
            let item = serde_json::to_value(LogItem::new(row, i as u64 + 1, View::User)).unwrap();
            assert_eq!(*line, item);
            assert!(line.get("ip").is_none());
        }
        assert_eq!(
            lines[5],
            serde_json::json!({"totals": {"rows": 5, "quota": 5, "prompt_tokens": 5, "completion_tokens": 5}})
        );
    }

    #[test]
    fn no_totals_row_unless_asked() {
        let mut encoder = ExportEncoder::new(ExportFormat::Csv, View::Admin, false);
        encoder.push(sample_row());
        let text = String::from_utf8(encoder.finish().to_vec()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(encoder.totals().rows, 1);
    }
}
