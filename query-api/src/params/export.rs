//! The options of the export endpoints: the file format and the optional totals row.

use utoipa::IntoParams;

use super::Params;
use crate::error::BadInput;
use crate::views::ExportFormat;

/// How to write an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportOptions {
    /// `csv` (default) or `jsonl` (`ndjson` is accepted too); anything else is a 400.
    #[param(value_type = Option<ExportFormat>)]
    pub format: ExportFormat,
    /// `true`/`1`: end the file with a totals row (row count, quota and token sums).
    /// Absent, `false` or `0`: no totals row. Anything else is a 400.
    #[param(value_type = Option<bool>)]
    pub totals: bool,
}

impl ExportOptions {
    pub fn from_params(params: &Params) -> Result<Self, BadInput> {
        let format = match params.get("format").filter(|v| !v.trim().is_empty()) {
            None => ExportFormat::default(),
            Some(value) => ExportFormat::parse(value)
                .ok_or_else(|| BadInput::not_one_of("format", value, ExportFormat::CHOICES))?,
        };
        let totals = match params.get("totals").map(|v| v.trim().to_ascii_lowercase()) {
            None => false,
            Some(value) => match value.as_str() {
                "" | "false" | "0" => false,
                "true" | "1" => true,
                _ => return Err(BadInput::not_one_of("totals", &value, "true, false, 1, 0")),
            },
        };
        Ok(ExportOptions { format, totals })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(q: &str) -> Result<ExportOptions, BadInput> {
        ExportOptions::from_params(&Params::parse(Some(q)).expect("parses"))
    }

    #[test]
    fn format_and_totals() {
        assert_eq!(options(""), Ok(ExportOptions::default()));
        assert_eq!(
            options("format=CSV").map(|o| o.format),
            Ok(ExportFormat::Csv)
        );
        assert_eq!(
            options("format=jsonl&totals=true"),
            Ok(ExportOptions {
                format: ExportFormat::Jsonl,
                totals: true
            })
        );
        assert_eq!(options("totals=1").map(|o| o.totals), Ok(true));
        assert_eq!(options("totals=0").map(|o| o.totals), Ok(false));
        assert!(matches!(
            options("format=xlsx"),
            Err(BadInput::NotOneOf { name: "format", .. })
        ));
        assert!(matches!(
            options("totals=yes"),
            Err(BadInput::NotOneOf { name: "totals", .. })
        ));
    }
}
