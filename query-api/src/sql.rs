//! The SQL condition builder: filters become `WHERE` clauses whose values are always
//! server-side query parameters (`{p0:Int64}` + `param_p0`), never text spliced into the SQL.
//! Every query of [`crate::store`] is built with it.

use serde::Serialize;

use crate::params::{LogFilter, Match};

/// A bound value. Serialized as the `param_*` of a ClickHouse query parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    /// A UUID in its text form.
    Uuid(String),
}

impl Value {
    fn clickhouse_type(&self) -> &'static str {
        match self {
            Value::Str(_) => "String",
            Value::I64(_) => "Int64",
            Value::U64(_) => "UInt64",
            Value::Uuid(_) => "UUID",
        }
    }
}

/// SQL conditions joined with AND, with their values as server-side query parameters
/// (`{p0:Int64}`): no value is ever spliced into the SQL text.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    clauses: Vec<String>,
    params: Vec<(String, Value)>,
}

impl Conditions {
    /// Registers a value and returns its placeholder.
    pub fn bind(&mut self, value: Value) -> String {
        let name = format!("p{}", self.params.len());
        let placeholder = format!("{{{name}:{}}}", value.clickhouse_type());
        self.params.push((name, value));
        placeholder
    }

    pub fn push(&mut self, clause: impl Into<String>) {
        self.clauses.push(clause.into());
    }

    /// `expr <op> {value}`.
    pub fn compare(&mut self, expr: &str, op: &str, value: Value) {
        let placeholder = self.bind(value);
        self.push(format!("{expr} {op} {placeholder}"));
    }

    pub fn string_match(&mut self, column: &str, value: &Match) {
        match value {
            Match::Exact(v) => self.compare(column, "=", Value::Str(v.clone())),
            Match::Like(v) => self.compare(column, "LIKE", Value::Str(v.clone())),
        }
    }

    /// `WHERE ...` (or `WHERE true`).
    pub fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            "WHERE true".to_owned()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// `WHERE ...` of the clauses pushed so far, which are then cleared while their values stay
    /// bound: several subqueries of one statement can share one set of parameters.
    pub fn take_where(&mut self) -> String {
        let clause = self.where_clause();
        self.clauses.clear();
        clause
    }

    pub fn apply(&self, mut query: clickhouse::query::Query) -> clickhouse::query::Query {
        for (name, value) in &self.params {
            query = query.param(name, value);
        }
        query
    }

    /// The non-time filters, on columns that `logs` and `logs_minute` share
    /// (`request_id` exists only in `logs`: callers route such filters to the raw table).
    pub fn dimensions(&mut self, filter: &LogFilter) {
        if let Some(t) = filter.log_type {
            self.compare("type", "=", Value::I64(t));
        }
        if let Some(user_id) = filter.user_id {
            self.compare("user_id", "=", Value::I64(user_id));
        }
        if let Some(username) = &filter.username {
            self.string_match("username", username);
        }
        if let Some(token_name) = &filter.token_name {
            self.compare("token_name", "=", Value::Str(token_name.clone()));
        }
        if let Some(model_name) = &filter.model_name {
            self.string_match("model_name", model_name);
        }
        if let Some(channel) = filter.channel {
            self.compare("channel_id", "=", Value::I64(channel));
        }
        if let Some(group) = &filter.group {
            self.compare("`group`", "=", Value::Str(group.clone()));
        }
        if let Some(request_id) = &filter.request_id {
            self.compare("request_id", "=", Value::Str(request_id.clone()));
        }
    }

    /// Rows strictly after `(created_at, event_id)` in list order (both descending): the
    /// keyset condition of a cursor page, written so that the primary key's `created_at`
    /// bounds what is read.
    pub fn before_row(&mut self, created_at: u32, event_id: &uuid::Uuid) {
        let t = self.bind(Value::I64(created_at.into()));
        let id = self.bind(Value::Uuid(event_id.to_string()));
        self.push(format!(
            "created_at <= {t} AND (created_at < {t} OR event_id < {id})"
        ));
    }

    /// `created_at` within `[start, end]` (seconds, inclusive), each bound optional.
    /// Bounds beyond the `DateTime` range are handled here rather than sent as overflowing
    /// values: a start after 2106 matches nothing, an end after it is unbounded.
    pub fn time_range(&mut self, column: &str, start: Option<i64>, end: Option<i64>) {
        if let Some(start) = start {
            if start > i64::from(u32::MAX) {
                self.push("false");
            } else {
                self.compare(column, ">=", Value::I64(start));
            }
        }
        if let Some(end) = end
            && end <= i64::from(u32::MAX)
        {
            self.compare(column, "<=", Value::I64(end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_parameters() {
        let filter = LogFilter {
            model_name: Some(Match::Exact("x' OR 1=1 --".into())),
            ..Default::default()
        };
        let mut c = Conditions::default();
        c.dimensions(&filter);
        assert_eq!(c.where_clause(), "WHERE model_name = {p0:String}");
        assert!(!c.where_clause().contains("OR 1=1"));
    }
}
