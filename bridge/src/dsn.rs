//! new-api's database DSNs, accepted verbatim (`SQL_DSN`, `LOG_SQL_DSN`, `SQLITE_PATH`), turned
//! into sqlx connect options. Pure: nothing here opens a connection.
//!
//! new-api's rule (`model/main.go`, `chooseDB`): an empty DSN or one starting with `local` is
//! SQLite at `SQLITE_PATH` (default `one-api.db?_busy_timeout=30000`); `postgres://` and
//! `postgresql://` are PostgreSQL; anything else is a go-sql-driver MySQL DSN
//! (`user:pass@tcp(host:3306)/db?params`). The bridge also takes what new-api would not, where
//! it cannot be mistaken for a MySQL DSN: a SQLite path (`/data/one-api.db`, `file:…`,
//! `sqlite://…`) and a libpq key=value PostgreSQL DSN (`host=… dbname=…`).

use std::str::FromStr;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::sqlite::SqliteConnectOptions;

/// new-api's `common.SQLitePath` default (its `SQLITE_PATH` overrides it).
pub const DEFAULT_SQLITE_PATH: &str = "one-api.db?_busy_timeout=30000";

/// How long a SQLite reader waits for new-api's write lock when the path sets no
/// `_busy_timeout` (new-api's own default is 30 s).
const DEFAULT_SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsnError {
    #[error("PostgreSQL DSN: {0}")]
    Postgres(String),
    #[error("MySQL DSN (user:pass@tcp(host:port)/db?params): {0}")]
    MySql(String),
    #[error("SQLite path: {0}")]
    Sqlite(String),
}

/// A source database, ready to connect to.
#[derive(Debug, Clone)]
pub enum SourceOptions {
    Postgres(PgConnectOptions),
    MySql(MySqlConnectOptions),
    Sqlite(SqliteConnectOptions),
}

/// What a DSN says, before it becomes sqlx options; what the unit tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedDsn {
    /// A `postgres://` URL, handed to sqlx as it is.
    PostgresUrl(String),
    /// A libpq key=value DSN.
    PostgresKeyValue(Vec<(String, String)>),
    MySql(MySqlDsn),
    Sqlite(SqliteDsn),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MySqlDsn {
    pub user: String,
    pub password: Option<String>,
    pub address: MySqlAddress,
    pub database: String,
    /// Query parameters, values unescaped (go-sql-driver unescapes them too).
    pub params: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MySqlAddress {
    Tcp { host: String, port: u16 },
    Unix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteDsn {
    pub path: String,
    pub busy_timeout: Duration,
}

/// Parses `dsn` the way new-api chooses its database; `sqlite_path` is new-api's `SQLITE_PATH`.
pub fn parse(dsn: &str, sqlite_path: &str) -> Result<ParsedDsn, DsnError> {
    let dsn = dsn.trim();
    if dsn.is_empty() || dsn.starts_with("local") {
        return parse_sqlite(sqlite_path).map(ParsedDsn::Sqlite);
    }
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        return Ok(ParsedDsn::PostgresUrl(dsn.to_owned()));
    }
    for prefix in ["sqlite://", "sqlite:", "file:"] {
        if let Some(path) = dsn.strip_prefix(prefix) {
            return parse_sqlite(path).map(ParsedDsn::Sqlite);
        }
    }
    if let Some(pairs) = postgres_key_value(dsn) {
        return Ok(ParsedDsn::PostgresKeyValue(pairs));
    }
    if looks_like_sqlite_path(dsn) {
        return parse_sqlite(dsn).map(ParsedDsn::Sqlite);
    }
    parse_mysql(dsn).map(ParsedDsn::MySql)
}

/// A path no go-sql-driver DSN can be: no `@`, no `tcp(`/`unix(`, and a SQLite file name.
fn looks_like_sqlite_path(dsn: &str) -> bool {
    let file = dsn.split('?').next().unwrap_or(dsn);
    !dsn.contains('@')
        && !dsn.contains('(')
        && [".db", ".sqlite", ".sqlite3", ".db3"]
            .iter()
            .any(|ext| file.ends_with(ext))
}

const PG_KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "application_name",
    "connect_timeout",
    "options",
    "target_session_attrs",
];

/// `host=db port=5432 user=x password='a b' dbname=newapi`: whitespace-separated `key=value`
/// pairs, values optionally single-quoted (`\'` and `\\` escaped), every key one of libpq's.
fn postgres_key_value(dsn: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = dsn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.next_if_eq(&'=')?;
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next()? {
                    '\'' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        if !PG_KEYS.contains(&key.as_str()) {
            return None;
        }
        pairs.push((key, value));
    }
    (!pairs.is_empty()).then_some(pairs)
}

fn parse_sqlite(path: &str) -> Result<SqliteDsn, DsnError> {
    let (file, query) = path.split_once('?').unwrap_or((path, ""));
    if file.is_empty() {
        return Err(DsnError::Sqlite("the path is empty".into()));
    }
    let mut busy_timeout = DEFAULT_SQLITE_BUSY_TIMEOUT;
    for (key, value) in query_pairs(query) {
        if key == "_busy_timeout" || key == "_timeout" {
            let ms: u64 = value.parse().map_err(|_| {
                DsnError::Sqlite(format!("{key}={value} is not a number of milliseconds"))
            })?;
            busy_timeout = Duration::from_millis(ms);
        }
    }
    Ok(SqliteDsn {
        path: file.to_owned(),
        busy_timeout,
    })
}

fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (unescape(key), unescape(value))
    })
}

fn unescape(text: &str) -> String {
    percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// go-sql-driver's `ParseDSN`: `[user[:password]@][net[(addr)]]/dbname[?params]`, the database
/// after the last `/`, the credentials before the last `@` that precedes it.
fn parse_mysql(dsn: &str) -> Result<MySqlDsn, DsnError> {
    let err = |m: &str| DsnError::MySql(m.to_owned());
    let slash = dsn
        .rfind('/')
        .ok_or_else(|| err("no '/' before the database name"))?;
    let (head, tail) = (&dsn[..slash], &dsn[slash + 1..]);
    let (database, query) = tail.split_once('?').unwrap_or((tail, ""));
    let (credentials, location) = match head.rfind('@') {
        Some(at) => (Some(&head[..at]), &head[at + 1..]),
        None => (None, head),
    };
    let (user, password) = match credentials {
        None => (String::new(), None),
        Some(c) => match c.split_once(':') {
            Some((user, password)) => (user.to_owned(), Some(password.to_owned())),
            None => (c.to_owned(), None),
        },
    };
    let (net, addr) = match location.split_once('(') {
        Some((net, rest)) => (
            net,
            rest.strip_suffix(')')
                .ok_or_else(|| err("the address lacks its closing ')'"))?,
        ),
        None => (location, ""),
    };
    let address = match net {
        "" | "tcp" | "tcp4" | "tcp6" => {
            let addr = if addr.is_empty() {
                "127.0.0.1:3306"
            } else {
                addr
            };
            let (host, port) = match addr.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(':') => (
                    host,
                    port.parse()
                        .map_err(|_| err(&format!("port {port:?} is not a number")))?,
                ),
                _ => (addr, 3306),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            MySqlAddress::Tcp {
                host: host.to_owned(),
                port,
            }
        }
        "unix" => MySqlAddress::Unix(if addr.is_empty() {
            "/tmp/mysql.sock".to_owned()
        } else {
            addr.to_owned()
        }),
        other => return Err(err(&format!("unknown network {other:?} (tcp or unix)"))),
    };
    if database.is_empty() {
        return Err(err("the database name is empty"));
    }
    Ok(MySqlDsn {
        user,
        password,
        address,
        database: database.to_owned(),
        params: query_pairs(query).collect(),
    })
}

impl ParsedDsn {
    pub fn into_options(self) -> Result<SourceOptions, DsnError> {
        match self {
            ParsedDsn::PostgresUrl(url) => PgConnectOptions::from_str(&url)
                .map(SourceOptions::Postgres)
                .map_err(|e| DsnError::Postgres(redacted(&e.to_string()))),
            ParsedDsn::PostgresKeyValue(pairs) => {
                postgres_options(&pairs).map(SourceOptions::Postgres)
            }
            ParsedDsn::MySql(dsn) => mysql_options(&dsn).map(SourceOptions::MySql),
            ParsedDsn::Sqlite(dsn) => Ok(SourceOptions::Sqlite(
                SqliteConnectOptions::new()
                    .filename(&dsn.path)
                    .busy_timeout(dsn.busy_timeout)
                    .create_if_missing(false)
                    // The bridge only reads; new-api owns the file.
                    .read_only(true),
            )),
        }
    }
}

/// sqlx's URL errors may quote the URL: never let the password through.
fn redacted(message: &str) -> String {
    match message.find("://") {
        Some(_) => "the URL cannot be parsed".into(),
        None => message.to_owned(),
    }
}

fn postgres_options(pairs: &[(String, String)]) -> Result<PgConnectOptions, DsnError> {
    let mut options = PgConnectOptions::new_without_pgpass();
    for (key, value) in pairs {
        options = match key.as_str() {
            "host" | "hostaddr" => options.host(value),
            "port" => options.port(
                value
                    .parse()
                    .map_err(|_| DsnError::Postgres(format!("port {value:?} is not a number")))?,
            ),
            "user" => options.username(value),
            "password" => options.password(value),
            "dbname" => options.database(value),
            "sslmode" => options.ssl_mode(
                PgSslMode::from_str(value)
                    .map_err(|_| DsnError::Postgres(format!("unknown sslmode {value:?}")))?,
            ),
            "sslrootcert" => options.ssl_root_cert(value),
            "application_name" => options.application_name(value),
            _ => options,
        };
    }
    Ok(options)
}

fn mysql_options(dsn: &MySqlDsn) -> Result<MySqlConnectOptions, DsnError> {
    let mut options = MySqlConnectOptions::new().database(&dsn.database);
    if !dsn.user.is_empty() {
        options = options.username(&dsn.user);
    }
    if let Some(password) = &dsn.password {
        options = options.password(password);
    }
    options = match &dsn.address {
        MySqlAddress::Tcp { host, port } => options.host(host).port(*port),
        MySqlAddress::Unix(path) => options.socket(path),
    };
    // go-sql-driver's default is no TLS.
    options = options.ssl_mode(MySqlSslMode::Disabled);
    for (key, value) in &dsn.params {
        options = match key.as_str() {
            "tls" => options.ssl_mode(match value.as_str() {
                "true" => MySqlSslMode::VerifyIdentity,
                "skip-verify" => MySqlSslMode::Required,
                "preferred" => MySqlSslMode::Preferred,
                "false" => MySqlSslMode::Disabled,
                other => {
                    return Err(DsnError::MySql(format!(
                        "tls={other}: only true, skip-verify, preferred and false are supported"
                    )));
                }
            }),
            "charset" => options.charset(value.split(',').next().unwrap_or("utf8mb4")),
            "collation" => options.collation(value),
            // parseTime, loc, timeouts and the rest change nothing the bridge reads.
            _ => options,
        };
    }
    Ok(options)
}

impl ParsedDsn {
    /// Which database this is, for logs: never a password.
    pub fn describe(&self) -> String {
        match self {
            ParsedDsn::PostgresUrl(url) => {
                let rest = url.split_once("://").map_or("", |(_, rest)| rest);
                let location = rest.rsplit_once('@').map_or(rest, |(_, location)| location);
                format!("postgresql {}", location.split('?').next().unwrap_or(""))
            }
            ParsedDsn::PostgresKeyValue(pairs) => {
                let get = |key: &str| {
                    pairs
                        .iter()
                        .find(|(k, _)| k == key)
                        .map_or("", |(_, v)| v.as_str())
                };
                format!(
                    "postgresql {}:{}/{}",
                    get("host"),
                    get("port"),
                    get("dbname")
                )
            }
            ParsedDsn::MySql(dsn) => match &dsn.address {
                MySqlAddress::Tcp { host, port } => {
                    format!("mysql {host}:{port}/{}", dsn.database)
                }
                MySqlAddress::Unix(path) => format!("mysql unix:{path}/{}", dsn.database),
            },
            ParsedDsn::Sqlite(dsn) => format!("sqlite {}", dsn.path),
        }
    }
}

#[cfg(test)]
mod tests;
