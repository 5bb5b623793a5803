//! A row as the event a gateway publishes (the JSON of docs/events.md).

use logbus_projections::events::LogEvent;
use logbus_projections::rows::LogRow;

/// The new-api log event (what a gateway publishes) of a row.
pub fn event_of(row: &LogRow) -> LogEvent {
    LogEvent {
        event_id: Some(row.event_id),
        created_at: i64::from(row.created_at),
        log_type: i64::from(row.log_type),
        user_id: row.user_id,
        username: Some(row.username.clone()),
        token_id: Some(row.token_id),
        token_name: Some(row.token_name.clone()),
        model_name: Some(row.model_name.clone()),
        quota: Some(row.quota),
        prompt_tokens: Some(row.prompt_tokens),
        completion_tokens: Some(row.completion_tokens),
        use_time: Some(row.use_time),
        is_stream: Some(row.is_stream),
        channel_id: Some(row.channel_id),
        channel_name: Some(row.channel_name.clone()),
        group: Some(row.group.clone()),
        ip: Some(row.ip.clone()),
        request_id: Some(row.request_id.clone()),
        upstream_request_id: Some(row.upstream_request_id.clone()),
        content: Some(row.content.clone()),
        other: (!row.other.is_empty())
            .then(|| serde_json::from_str(&row.other).unwrap_or(serde_json::Value::Null)),
    }
}

/// The event of a row as JSON text.
pub fn event_json(row: &LogRow) -> String {
    serde_json::to_string(&event_of(row)).expect("log events serialize")
}
