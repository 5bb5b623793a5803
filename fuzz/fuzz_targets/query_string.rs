//! A query string, any bytes, through the API's parser (`Params::parse`) and every typed
//! parameter parser of query-api/src/params, then the SQL condition builder. Beyond "no
//! panic": a refusal is a `BadInput` whose message (both languages) is bounded however long
//! the input, accepted values keep the ranges docs/api.md gives, and no value is ever spliced
//! into SQL text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use logbus_query_api::error::{ApiError, BadInput, Lang};
use logbus_query_api::params::{
    Cursor, DataRange, DataUser, DeleteBefore, ExportOptions, Keyword, LogFilter, MAX_PAGE_SIZE,
    MAX_STRING_PARAM, MAX_TOP, MAX_WINDOW, Match, Page, Pagination, Params, SeriesQuery,
    StatFilter, TokenKey,
};
use logbus_query_api::sql::Conditions;

fuzz_target!(|data: &[u8]| {
    // As the HTTP layer hands it over (a `&str`), when the bytes are text...
    if let Ok(query) = std::str::from_utf8(data) {
        check_query(query);
    }
    // ...and every byte percent-encoded but the separators, so that arbitrary bytes, invalid
    // UTF-8 included, reach the decoder.
    let encoded: String = data
        .iter()
        .map(|&b| match b {
            b'&' | b'=' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    check_query(&encoded);
});

fn check_query(query: &str) {
    match Params::parse(Some(query)) {
        Ok(params) => check_params(&params),
        Err(bad) => {
            assert_eq!(bad, BadInput::InvalidUtf8);
            refusal(bad);
        }
    }
}

/// The 400 a refusal becomes: its message quotes at most a shortened value (64 characters,
/// each at most 10 once escaped, `\u{10ffff}`), whatever the input's length.
fn refusal(bad: BadInput) {
    let error = ApiError::from(bad);
    assert_eq!(error.status().as_u16(), 400);
    for lang in [Lang::Zh, Lang::En] {
        let message = error.message(lang);
        assert!(
            message.chars().count() <= 1024,
            "a refusal's message is bounded: {message}"
        );
    }
}

fn accept<T>(parsed: Result<T, BadInput>) -> Option<T> {
    parsed.map_err(refusal).ok()
}

fn check_params(params: &Params) {
    let page = Page::from_params(params);
    assert!(page.page >= 1 && (1..=MAX_PAGE_SIZE).contains(&page.page_size));
    let _ = page.offset();
    if let Some(pagination) = accept(Pagination::from_params(params)) {
        assert!((1..=MAX_PAGE_SIZE).contains(&pagination.page_size()));
        if let Pagination::Offset(page) = pagination {
            assert!(page.page * page.page_size <= MAX_WINDOW);
        }
        if let Pagination::After { after, .. } = pagination {
            assert_eq!(Cursor::decode(&after.encode()), Ok(after));
        }
        assert!(pagination.page() >= 1);
        let _ = pagination.skipped();
    }

    for allow_username in [true, false] {
        if let Some(filter) = accept(LogFilter::from_params(params, allow_username)) {
            check_filter(&filter, allow_username);
        }
        if let Some(StatFilter(filter)) = accept(StatFilter::from_params(params, allow_username)) {
            assert!(
                filter.log_type.is_some(),
                "an absent type counts consumption"
            );
            check_filter(&filter, allow_username);
        }
        if let Some(series) = accept(SeriesQuery::from_params(params, allow_username)) {
            assert!(series.filter.start.is_some());
            assert!(series.group_by.len() <= 2);
            assert!(
                series
                    .top
                    .is_none_or(|top| (1..=MAX_TOP).contains(&i64::from(top)))
            );
            check_filter(&series.filter, allow_username);
        }
    }

    if let Some(keyword) = accept(Keyword::from_params(params)) {
        assert!(keyword.keyword.chars().count() <= MAX_STRING_PARAM);
    }
    if let Some(key) = accept(TokenKey::from_params(params)) {
        assert!(key.key.is_none_or(|k| !k.is_empty()));
    }
    if let Some(user) = accept(DataUser::from_params(params)) {
        assert!(user.username.is_none_or(|u| !u.is_empty()));
    }
    if let Some(range) = accept(DataRange::from_params(params)) {
        let _ = accept(range.within_a_month());
    }
    if let Some(delete) = accept(DeleteBefore::from_params(params)) {
        assert!(delete.target_timestamp >= 1);
        for (now, min_age) in [(0, 0), (1_764_201_600, 86_400), (i64::MAX, u64::MAX)] {
            let _ = delete.check(now, min_age);
        }
    }
    let _ = accept(ExportOptions::from_params(params));
}

fn check_filter(filter: &LogFilter, allow_username: bool) {
    assert!(filter.log_type.is_none_or(|t| (1..=255).contains(&t)));
    assert!(filter.start.is_none_or(|t| t >= 1) && filter.end.is_none_or(|t| t >= 1));
    assert!(filter.channel != Some(0) && filter.user_id.is_none());
    assert!(allow_username || filter.username.is_none());
    for pattern in [&filter.username, &filter.model_name].into_iter().flatten() {
        if let Match::Like(like) = pattern {
            assert!(like.matches('%').count() <= 2 && !like.contains("%%"));
        }
    }
    let strings = [&filter.token_name, &filter.group, &filter.request_id];
    for value in strings.into_iter().flatten() {
        assert!(!value.is_empty() && value.chars().count() <= MAX_STRING_PARAM);
    }

    // The SQL text is the builder's own: column names, operators and placeholders only.
    let mut conditions = Conditions::default();
    conditions.dimensions(filter);
    conditions.time_range("created_at", filter.start, filter.end);
    let sql = conditions.where_clause();
    assert!(
        sql.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" _{}:<>=`".contains(&b)),
        "a value reached the SQL text: {sql}"
    );
}
