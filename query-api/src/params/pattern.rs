//! The pattern rules of the `username` and `model_name` filters: new-api's, with `%` as the
//! only wildcard.

use crate::error::{BadInput, PatternProblem};

/// A string filter: exact, or a LIKE pattern when the value holds `%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    /// A LIKE pattern whose `_` and `\` are escaped so that only `%` is a wildcard.
    Like(String),
}

impl Match {
    /// Pattern rules: at most two `%`, never `%%`, and at least two other characters.
    pub fn parse(name: &'static str, value: String) -> Result<Match, BadInput> {
        if !value.contains('%') {
            return Ok(Match::Exact(value));
        }
        let invalid = |problem| BadInput::InvalidPattern { name, problem };
        if value.contains("%%") {
            return Err(invalid(PatternProblem::DoublePercent));
        }
        if value.matches('%').count() > 2 {
            return Err(invalid(PatternProblem::TooManyPercent));
        }
        if value.chars().filter(|c| *c != '%').count() < 2 {
            return Err(invalid(PatternProblem::TooShort));
        }
        let mut pattern = String::with_capacity(value.len() + 4);
        for c in value.chars() {
            if c == '_' || c == '\\' {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        Ok(Match::Like(pattern))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(
            Match::parse("m", "gpt-4".into()),
            Ok(Match::Exact("gpt-4".into()))
        );
        assert_eq!(
            Match::parse("m", "gpt%".into()),
            Ok(Match::Like("gpt%".into()))
        );
        assert_eq!(
            Match::parse("m", "%my_model%".into()),
            Ok(Match::Like("%my\\_model%".into()))
        );
        assert!(Match::parse("m", "%a%b%".into()).is_err());
        assert!(Match::parse("m", "ab%%".into()).is_err());
        assert!(Match::parse("m", "a%".into()).is_err());
        assert!(Match::parse("m", "%".into()).is_err());
    }
}
