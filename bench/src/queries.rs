//! The query workload: each case once through logbus's HTTP API and once as the SQL new-api
//! (model/log.go, GORM) sends to its `logs` table.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio_postgres::Client as PgClient;
use tokio_postgres::types::ToSql;

use crate::data::{self, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    Admin,
    /// User 1, the busiest.
    SelfUser,
    /// Gateway user `id` with its own access token.
    User(u32),
    None,
}

pub(crate) enum P {
    I(i64),
    S(String),
}

pub(crate) struct Case {
    pub name: &'static str,
    pub path: String,
    pub auth: Auth,
    /// Statements new-api runs for the same request, one after the other.
    pub sql: Vec<(String, Vec<P>)>,
}

const PAGE: i64 = 20;
/// new-api's common.MaxRecentItems, the LIMIT of its search queries.
const MAX_RECENT: i64 = 100;

fn list(filter: &str, params: Vec<P>, offset: i64) -> Vec<(String, Vec<P>)> {
    let w = if filter.is_empty() {
        String::new()
    } else {
        format!(" WHERE {filter}")
    };
    let dup = params
        .iter()
        .map(|p| match p {
            P::I(i) => P::I(*i),
            P::S(s) => P::S(s.clone()),
        })
        .collect();
    vec![
        (format!("SELECT count(*) FROM logs{w}"), params),
        (
            format!("SELECT * FROM logs{w} ORDER BY logs.id desc LIMIT {PAGE} OFFSET {offset}"),
            dup,
        ),
    ]
}

fn stat(filter: &str, mut params: Vec<P>, start: i64, end: i64, now: i64) -> Vec<(String, Vec<P>)> {
    let n = params.len();
    let extra = if filter.is_empty() {
        String::new()
    } else {
        format!("{filter} AND ")
    };
    let dup: Vec<P> = params
        .iter()
        .map(|p| match p {
            P::I(i) => P::I(*i),
            P::S(s) => P::S(s.clone()),
        })
        .collect();
    let mut rpm = dup;
    rpm.push(P::I(now - 60));
    params.push(P::I(start));
    params.push(P::I(end));
    vec![
        (
            format!(
                "SELECT sum(quota) quota FROM logs WHERE {extra}created_at >= ${} AND created_at <= ${} AND type = 2",
                n + 1,
                n + 2
            ),
            params,
        ),
        (
            format!(
                "SELECT count(*) rpm, sum(prompt_tokens) + sum(completion_tokens) tpm FROM logs WHERE {extra}type = 2 AND created_at >= ${}",
                n + 1
            ),
            rpm,
        ),
    ]
}

pub(crate) fn cases(shape: &Shape, keyword: &str, rare_keyword: &str) -> Vec<Case> {
    let end = shape.end as i64;
    let now = end;
    let d1 = end - 86_400;
    let d30 = end - 30 * 86_400;
    let busy_user = data::username(3);
    let model = data::model_name(1);
    let token = 50.min(shape.tokens);
    vec![
        Case {
            name: "admin list p1 + total, no filter",
            path: format!("/api/log/?p=1&page_size={PAGE}"),
            auth: Auth::Admin,
            sql: list("", vec![], 0),
        },
        Case {
            name: "admin list p1 + total, user+model",
            path: format!("/api/log/?p=1&page_size={PAGE}&username={busy_user}&model_name={model}"),
            auth: Auth::Admin,
            sql: list(
                "logs.model_name like $1 AND logs.username = $2",
                vec![P::S(model.clone()), P::S(busy_user.clone())],
                0,
            ),
        },
        Case {
            name: "admin list p1 + total, 1-day range",
            path: format!(
                "/api/log/?p=1&page_size={PAGE}&start_timestamp={d1}&end_timestamp={end}"
            ),
            auth: Auth::Admin,
            sql: list(
                "logs.created_at >= $1 AND logs.created_at <= $2",
                vec![P::I(d1), P::I(end)],
                0,
            ),
        },
        Case {
            name: "admin list page 500",
            path: format!("/api/log/?p=500&page_size={PAGE}"),
            auth: Auth::Admin,
            sql: list("", vec![], 499 * PAGE),
        },
        Case {
            name: "self list p1 + total (busiest user)",
            path: format!("/api/log/self?p=1&page_size={PAGE}"),
            auth: Auth::SelfUser,
            sql: list("logs.user_id = $1", vec![P::I(1)], 0),
        },
        Case {
            name: "admin stat, 30 days",
            path: format!("/api/log/stat?type=2&start_timestamp={d30}&end_timestamp={end}"),
            auth: Auth::Admin,
            sql: stat("", vec![], d30, end, now),
        },
        Case {
            name: "admin stat, 1 day",
            path: format!("/api/log/stat?type=2&start_timestamp={d1}&end_timestamp={end}"),
            auth: Auth::Admin,
            sql: stat("", vec![], d1, end, now),
        },
        Case {
            name: "self stat, 30 days (busiest user)",
            path: format!("/api/log/self/stat?type=2&start_timestamp={d30}&end_timestamp={end}"),
            auth: Auth::SelfUser,
            sql: stat(
                "username = $1",
                vec![P::S(data::username(1))],
                d30,
                end,
                now,
            ),
        },
        // new-api's dashboard reads `quota_data` (hourly rows its gateways flush every 5
        // minutes); logbus answers from the per-minute rollup at query time.
        Case {
            name: "dashboard /api/data/ (per model and hour), 30 days",
            path: format!("/api/data/?start_timestamp={d30}&end_timestamp={end}"),
            auth: Auth::Admin,
            sql: vec![(
                "SELECT model_name, sum(count) as count, sum(quota) as quota, \
                 sum(token_used) as token_used, created_at FROM quota_data \
                 WHERE created_at >= $1 and created_at <= $2 GROUP BY model_name, created_at"
                    .into(),
                vec![P::I(d30), P::I(end)],
            )],
        },
        Case {
            name: "dashboard /api/data/self, 30 days (busiest user)",
            path: format!("/api/data/self?start_timestamp={d30}&end_timestamp={end}"),
            auth: Auth::SelfUser,
            sql: vec![(
                "SELECT * FROM quota_data WHERE user_id = $1 and created_at >= $2 and created_at <= $3"
                    .into(),
                vec![P::I(1), P::I(d30), P::I(end)],
            )],
        },
        // The nearest new-api has to a series by model is the same quota_data query (no
        // prompt/completion split, hours only).
        Case {
            name: "series by model, hourly, 30 days",
            path: format!(
                "/api/log/stat/series?start_timestamp={d30}&end_timestamp={end}&interval=hour&group_by=model"
            ),
            auth: Auth::Admin,
            sql: vec![(
                "SELECT model_name, sum(count) as count, sum(quota) as quota, \
                 sum(token_used) as token_used, created_at FROM quota_data \
                 WHERE created_at >= $1 and created_at <= $2 GROUP BY model_name, created_at"
                    .into(),
                vec![P::I(d30), P::I(end)],
            )],
        },
        Case {
            name: "admin search (content, keyword in 0.4% of rows)",
            path: format!("/api/log/search?keyword={keyword}"),
            auth: Auth::Admin,
            sql: vec![(
                format!(
                    "SELECT * FROM logs WHERE content LIKE $1 ORDER BY id desc LIMIT {MAX_RECENT}"
                ),
                vec![P::S(format!("{keyword}%"))],
            )],
        },
        Case {
            name: "admin search (content, rare keyword: 1e-5 of rows)",
            path: format!("/api/log/search?keyword={rare_keyword}"),
            auth: Auth::Admin,
            sql: vec![(
                format!(
                    "SELECT * FROM logs WHERE content LIKE $1 ORDER BY id desc LIMIT {MAX_RECENT}"
                ),
                vec![P::S(format!("{rare_keyword}%"))],
            )],
        },
        Case {
            name: "token lookup (/api/log/token)",
            path: format!("/api/log/token?key=sk-{}", data::token_key(token)),
            auth: Auth::None,
            // GetLogByKey with a separate log DB: the token's id is resolved first, then every
            // log of the token (no LIMIT in new-api).
            sql: vec![(
                "SELECT * FROM logs WHERE token_id = $1".into(),
                vec![P::I(token as i64)],
            )],
        },
    ]
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Lat {
    pub n: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub rps: f64,
    pub error: Option<String>,
}

/// The nearest-rank `p` quantile of `sorted` (ascending, not empty).
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn summarize(mut v: Vec<f64>, total: f64) -> Lat {
    v.sort_by(|a, b| a.total_cmp(b));
    Lat {
        n: v.len(),
        p50_ms: percentile(&v, 0.5),
        p99_ms: percentile(&v, 0.99),
        rps: v.len() as f64 / total,
        error: None,
    }
}

/// Sequential requests: 2 warm-ups, then up to `iters` timed ones within `budget` (at least 5).
async fn measure<F, Fut>(iters: usize, budget: Duration, mut f: F) -> Lat
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    for _ in 0..2 {
        if let Err(e) = f().await {
            return Lat {
                error: Some(format!("{e:#}")),
                ..Default::default()
            };
        }
    }
    let start = Instant::now();
    let mut v = Vec::new();
    while v.len() < iters && (v.len() < 5 || start.elapsed() < budget) {
        let t = Instant::now();
        if let Err(e) = f().await {
            return Lat {
                error: Some(format!("{e:#}")),
                ..Default::default()
            };
        }
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    summarize(v, start.elapsed().as_secs_f64())
}

pub(crate) struct Http {
    pub client: reqwest::Client,
    pub base: String,
    pub admin_id: u32,
}

impl Auth {
    /// new-api's headers of a request as `self` (`admin_id`: the admin's user id).
    pub(crate) fn headers(self, admin_id: u32) -> Vec<(&'static str, String)> {
        let as_user = |token: String, id: u32| {
            vec![("Authorization", token), ("New-Api-User", id.to_string())]
        };
        match self {
            Auth::Admin => as_user(data::ADMIN_ACCESS_TOKEN.into(), admin_id),
            Auth::SelfUser => as_user(data::SELF_ACCESS_TOKEN.into(), 1),
            Auth::User(id) => as_user(data::access_token(id), id),
            Auth::None => Vec::new(),
        }
    }
}

/// An answer other than a 200 whose envelope says `"success":true` is an error.
pub(crate) fn check_answer(status: u16, body: &[u8]) -> Result<()> {
    let text = || String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if status != 200 {
        bail!("HTTP {status}: {}", text());
    }
    // Every envelope is serialized with `success` first (views/envelope.rs).
    if !body.starts_with(b"{\"success\":true") {
        bail!("{}", text());
    }
    Ok(())
}

impl Http {
    /// GETs `path` as `auth`, checked by [`check_answer`].
    pub(crate) async fn get(&self, path: &str, auth: Auth) -> Result<()> {
        let mut req = self.client.get(format!("{}{}", self.base, path));
        for (name, value) in auth.headers(self.admin_id) {
            req = req.header(name, value);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        check_answer(status, &resp.bytes().await?)
    }
}

pub(crate) async fn run_http(http: &Http, case: &Case, iters: usize, budget: Duration) -> Lat {
    measure(iters, budget, || http.get(&case.path, case.auth)).await
}

/// The least a request costs on each side, to show what bounds the cheapest queries: the API
/// answering `/healthz` (one trivial ClickHouse query behind it), ClickHouse answering
/// `SELECT 1` over HTTP, and PostgreSQL answering `SELECT 1` (its side of both floor rows).
pub(crate) const FLOOR_API: &str =
    "floor: API request with a trivial ClickHouse query (GET /healthz) vs PostgreSQL SELECT 1";
pub(crate) const FLOOR_CLICKHOUSE: &str =
    "floor: ClickHouse SELECT 1 over HTTP vs PostgreSQL SELECT 1";

pub(crate) fn floor_case() -> Case {
    Case {
        name: FLOOR_API,
        path: "/healthz".into(),
        auth: Auth::None,
        sql: vec![("SELECT 1".into(), vec![])],
    }
}

pub(crate) async fn run_clickhouse_floor(
    ch: &clickhouse::Client,
    iters: usize,
    budget: Duration,
) -> Lat {
    measure(iters, budget, || async {
        ch.query("SELECT 1").fetch_one::<u8>().await?;
        Ok(())
    })
    .await
}

pub(crate) async fn run_pg(pg: &PgClient, case: &Case, iters: usize, budget: Duration) -> Lat {
    measure(iters, budget, || async {
        for (sql, params) in &case.sql {
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| match p {
                    P::I(i) => i as &(dyn ToSql + Sync),
                    P::S(s) => s as &(dyn ToSql + Sync),
                })
                .collect();
            pg.query(sql.as_str(), &refs).await?;
        }
        Ok(())
    })
    .await
}
