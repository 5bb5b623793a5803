//! The little lexing the cluster variant needs: which bytes of a statement are code (outside
//! string literals, quoted identifiers and `--` comments) and at which parenthesis depth, so
//! that a keyword inside a column comment or an engine argument is never taken for a clause;
//! and the parts of a CREATE TABLE built on it (its clauses, its column names).

/// A word (an identifier or keyword: ASCII letters, digits, `_`) at parenthesis depth 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Word<'a> {
    pub(super) start: usize,
    pub(super) text: &'a str,
}

impl Word<'_> {
    pub(super) fn end(&self) -> usize {
        self.start + self.text.len()
    }

    pub(super) fn is(&self, keyword: &str) -> bool {
        self.text.eq_ignore_ascii_case(keyword)
    }
}

/// Calls `visit(index, byte, depth)` for each byte of code, `depth` being the parenthesis depth
/// outside the byte (an opening parenthesis is seen at the depth it opens from).
fn scan(sql: &str, mut visit: impl FnMut(usize, u8, usize)) {
    let bytes = sql.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'`' | b'"') => {
                i = after_quoted(bytes, i, quote);
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' => {
                visit(i, b'(', depth);
                depth += 1;
            }
            b')' => {
                depth = depth.saturating_sub(1);
                visit(i, b')', depth);
            }
            byte => visit(i, byte, depth),
        }
        i += 1;
    }
}

/// The index after the quoted token opened at `start` (ClickHouse escapes a quote by doubling
/// it or with a backslash).
fn after_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The words of `sql` at depth 0, in order.
pub(super) fn top_level_words(sql: &str) -> Vec<Word<'_>> {
    let mut words = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut close = |current: &mut Option<(usize, usize)>| {
        if let Some((start, end)) = current.take() {
            words.push(Word {
                start,
                text: &sql[start..end],
            });
        }
    };
    scan(sql, |i, byte, depth| {
        let word = depth == 0 && is_word_byte(byte);
        match current {
            Some((_, ref mut end)) if word && *end == i => *end = i + 1,
            _ => {
                close(&mut current);
                if word {
                    current = Some((i, i + 1));
                }
            }
        }
    });
    close(&mut current);
    words
}

/// `sql` split at its depth-0 occurrences of `separator`, each piece trimmed.
pub(super) fn split_top_level(sql: &str, separator: u8) -> Vec<&str> {
    let mut cuts = Vec::new();
    scan(sql, |i, byte, depth| {
        if depth == 0 && byte == separator {
            cuts.push(i);
        }
    });
    let mut pieces = Vec::new();
    let mut start = 0;
    for cut in cuts {
        pieces.push(sql[start..cut].trim());
        start = cut + 1;
    }
    pieces.push(sql[start..].trim());
    pieces
}

/// The index of the parenthesis that closes the one `sql` starts with.
pub(super) fn matching_paren(sql: &str) -> Option<usize> {
    if !sql.starts_with('(') {
        return None;
    }
    let mut found = None;
    scan(sql, |i, byte, depth| {
        if found.is_none() && i > 0 && byte == b')' && depth == 0 {
            found = Some(i);
        }
    });
    found
}

/// `sql` after the leading `keywords` (case-insensitive, separated by whitespace).
pub(super) fn after_keywords<'a>(sql: &'a str, keywords: &[&str]) -> Option<&'a str> {
    let mut rest = sql;
    for keyword in keywords {
        let trimmed = rest.trim_start();
        let head = trimmed.get(..keyword.len())?;
        let boundary = trimmed
            .as_bytes()
            .get(keyword.len())
            .is_none_or(|b| !is_word_byte(*b));
        if !head.eq_ignore_ascii_case(keyword) || !boundary {
            return None;
        }
        rest = &trimmed[keyword.len()..];
    }
    Some(rest)
}

/// The identifier `sql` starts with (after whitespace), and what follows it.
pub(super) fn identifier(sql: &str) -> Option<(&str, &str)> {
    let trimmed = sql.trim_start();
    let len = trimmed.bytes().take_while(|b| is_word_byte(*b)).count();
    let starts_well = trimmed
        .as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
    starts_well.then(|| trimmed.split_at(len))
}

/// One clause after the column list of a CREATE TABLE: `ENGINE = …`, `ORDER BY …`, ….
#[derive(Debug)]
pub(super) struct Clause<'a> {
    pub(super) keyword: &'static str,
    pub(super) text: &'a str,
}

const CLAUSE_KEYWORDS: &[&str] = &[
    "ENGINE",
    "PARTITION",
    "PRIMARY",
    "ORDER",
    "SAMPLE",
    "TTL",
    "SETTINGS",
    "COMMENT",
];

/// The clauses of `sql`, the text after a column list; text before the first clause is an error.
pub(super) fn clauses(sql: &str) -> Result<Vec<Clause<'_>>, &'static str> {
    let starts: Vec<(usize, &'static str)> = top_level_words(sql)
        .iter()
        .filter_map(|w| {
            let keyword = CLAUSE_KEYWORDS.iter().find(|k| w.is(k))?;
            Some((w.start, *keyword))
        })
        .collect();
    if !sql[..starts.first().map_or(sql.len(), |s| s.0)]
        .trim()
        .is_empty()
    {
        return Err("text between the column list and the first clause");
    }
    Ok(starts
        .iter()
        .enumerate()
        .map(|(i, (start, keyword))| {
            let end = starts.get(i + 1).map_or(sql.len(), |next| next.0);
            Clause {
                keyword,
                text: sql[*start..end].trim(),
            }
        })
        .collect())
}

/// The column names of a column list `( … )` (index and projection lines excluded).
pub(super) fn column_names(columns: &str) -> Vec<&str> {
    let inner = &columns[1..columns.len() - 1];
    split_top_level(inner, b',')
        .into_iter()
        .filter_map(|entry| identifier(entry.trim_start_matches('`')).map(|(name, _)| name))
        .filter(|name| {
            !name.eq_ignore_ascii_case("INDEX") && !name.eq_ignore_ascii_case("PROJECTION")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_comments_and_parentheses_hide_words() {
        let sql = "a 'b ''c'' FROM' `d e` -- f g\n h(i, j) k";
        let words: Vec<&str> = top_level_words(sql).iter().map(|w| w.text).collect();
        assert_eq!(words, ["a", "h", "k"]);
    }

    #[test]
    fn splitting_keeps_nested_commas() {
        assert_eq!(
            split_top_level("a = f(1, 2), b = 'x,y' , c", b','),
            ["a = f(1, 2)", "b = 'x,y'", "c"]
        );
    }

    #[test]
    fn the_matching_parenthesis_skips_literals() {
        let sql = "(a ')' (b)) c";
        assert_eq!(matching_paren(sql), Some(10));
        assert_eq!(matching_paren("x()"), None);
    }

    #[test]
    fn keywords_need_a_word_boundary() {
        assert_eq!(
            after_keywords("ALTER  table x", &["ALTER", "TABLE"]),
            Some(" x")
        );
        assert_eq!(after_keywords("ALTERED TABLE", &["ALTER"]), None);
        assert_eq!(identifier("  logs_1 (a)"), Some(("logs_1", " (a)")));
        assert_eq!(identifier("1logs"), None);
    }
}
