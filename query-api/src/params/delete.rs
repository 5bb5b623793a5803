//! The parameters of the retention delete and the guard against cutting into recent data: a
//! typo in `target_timestamp` must not wipe today's logs (pure, no I/O; the handler passes the
//! clock and the configured margin).

use utoipa::IntoParams;

use super::Params;
use crate::error::BadInput;

/// The cut of the retention delete and how it is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteBefore {
    /// Unix seconds: logs with `created_at` before it are deleted. Required, 1..=4294967295,
    /// never after now; newer than now minus `--retention-min-age-secs` (default one day)
    /// only with `confirm=true`.
    #[param(value_type = i64, required = true, minimum = 1, maximum = 4294967295_i64)]
    pub target_timestamp: u32,
    /// `true` (or `1`): delete even though the target is within the margin of now.
    #[param(value_type = Option<bool>)]
    pub confirm: bool,
    /// `true` (or `1`): delete nothing, answer the number of logs that would be deleted.
    #[param(value_type = Option<bool>)]
    pub dry_run: bool,
}

/// Whether a delete may go ahead at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteCheck {
    Allowed,
    /// The target is after now: it would delete what arrives while the delete runs.
    InTheFuture,
    /// The target is newer than now minus the margin and `confirm` is not set.
    TooRecent {
        newest_allowed: i64,
    },
}

/// `true`/`1` or `false`/`0`; empty or absent is false; anything else is refused.
fn flag(params: &Params, name: &'static str) -> Result<bool, BadInput> {
    match params.get(name).map(str::trim) {
        None | Some("") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(v) => Err(BadInput::not_a_boolean(name, v)),
    }
}

impl DeleteBefore {
    /// Absent or 0 is new-api's "target timestamp is required"; beyond `u32` is out of range.
    pub fn from_params(params: &Params) -> Result<Self, BadInput> {
        let target_timestamp = match params.int("target_timestamp")? {
            None | Some(0) => return Err(BadInput::TargetTimestampRequired),
            Some(t) => u32::try_from(t).map_err(|_| {
                BadInput::out_of_range("target_timestamp", &t.to_string(), 1, u32::MAX.into())
            })?,
        };
        Ok(DeleteBefore {
            target_timestamp,
            confirm: flag(params, "confirm")?,
            dry_run: flag(params, "dry_run")?,
        })
    }

    /// Whether this delete may run at `now` with a margin of `min_age_secs`. A target after
    /// now is refused even when confirmed: to empty the table, cut at now. A dry run deletes
    /// nothing, so only the future is refused for it.
    pub fn check(&self, now: i64, min_age_secs: u64) -> DeleteCheck {
        let target = i64::from(self.target_timestamp);
        if target > now {
            return DeleteCheck::InTheFuture;
        }
        let newest_allowed = now.saturating_sub(i64::try_from(min_age_secs).unwrap_or(i64::MAX));
        if target > newest_allowed && !self.confirm && !self.dry_run {
            return DeleteCheck::TooRecent { newest_allowed };
        }
        DeleteCheck::Allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<DeleteBefore, BadInput> {
        DeleteBefore::from_params(&Params::parse(Some(q)).expect("parses"))
    }

    #[test]
    fn target_is_required_and_bounded() {
        assert_eq!(
            parse("target_timestamp=0"),
            Err(BadInput::TargetTimestampRequired)
        );
        assert_eq!(parse(""), Err(BadInput::TargetTimestampRequired));
        assert!(matches!(
            parse("target_timestamp=-1"),
            Err(BadInput::OutOfRange { .. })
        ));
        let max = parse("target_timestamp=4294967295").expect("in range");
        assert_eq!(max.target_timestamp, u32::MAX);
        assert!(!max.confirm && !max.dry_run);
    }

    #[test]
    fn flags_are_booleans() {
        let both = parse("target_timestamp=5&confirm=true&dry_run=1").expect("parses");
        assert!(both.confirm && both.dry_run);
        let neither = parse("target_timestamp=5&confirm=FALSE&dry_run=0").expect("parses");
        assert!(!neither.confirm && !neither.dry_run);
        assert!(matches!(
            parse("target_timestamp=5&confirm=yes"),
            Err(BadInput::NotABoolean { .. })
        ));
    }

    #[test]
    fn recent_targets_need_confirmation_and_the_future_is_refused() {
        let now = 1_700_000_000;
        let day = 86_400;
        let at = |t: i64, q: &str| {
            parse(&format!("target_timestamp={t}{q}"))
                .expect("parses")
                .check(now, day as u64)
        };
        assert_eq!(
            at(now - day, ""),
            DeleteCheck::Allowed,
            "exactly the margin"
        );
        assert_eq!(
            at(now - day + 1, ""),
            DeleteCheck::TooRecent {
                newest_allowed: now - day
            }
        );
        assert_eq!(at(now - 5, "&confirm=true"), DeleteCheck::Allowed);
        assert_eq!(at(now, "&confirm=true"), DeleteCheck::Allowed, "now itself");
        assert_eq!(at(now + 1, "&confirm=true"), DeleteCheck::InTheFuture);
        assert_eq!(at(now + 1, "&dry_run=true"), DeleteCheck::InTheFuture);
        assert_eq!(at(now - 5, "&dry_run=true"), DeleteCheck::Allowed);
        let no_margin = parse(&format!("target_timestamp={now}"))
            .expect("parses")
            .check(now, 0);
        assert_eq!(no_margin, DeleteCheck::Allowed);
        let huge_margin = parse("target_timestamp=1")
            .expect("parses")
            .check(now, u64::MAX);
        assert!(matches!(huge_margin, DeleteCheck::TooRecent { .. }));
    }
}
