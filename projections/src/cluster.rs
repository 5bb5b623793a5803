//! The cluster variant of the migrations (pure, no I/O): the same schema on a ClickHouse
//! cluster of shards × replicas with Keeper, derived statement by statement from the
//! single-server SQL so that the two can never drift apart. `docs/scaling.md` explains the
//! layout; in short:
//!
//! - [`SHARDED`] tables (`logs`, `logs_minute`) are stored as `<table>_local`, a
//!   `Replicated*MergeTree` per shard, with a `Distributed` table under the original name that
//!   reads every shard and routes inserts by [`SHARDING_KEY`]; their materialized view runs
//!   on each shard, from the local raw table into the local rollup;
//! - every other table (identities, ingest's intents, the migration record, the retention
//!   lock) is small and is one replicated table with a replica on every server (its Keeper
//!   path has no `{shard}`), read and written under its own name;
//! - every `CREATE` and `ALTER` runs `ON CLUSTER`, and `non_replicated_deduplication_window`
//!   becomes `replicated_deduplication_window` (block hashes kept in Keeper, per shard).
//!
//! Each statement kind has its own small rule, applied to a lexed statement (literals,
//! comments and parentheses hidden), and a statement no rule knows is an error rather than
//! a guess: a future migration must teach this module its kind before it can ship.

mod lex;
#[cfg(test)]
mod tests;

use crate::migrate::SCHEMA_MIGRATIONS_DDL;
use crate::{Error, MIGRATIONS, Migration, Result, tables, validate_database_name};
use lex::{
    Word, after_keywords, clauses, column_names, identifier, matching_paren, split_top_level,
    top_level_words,
};

/// The tables split over the shards by [`SHARDING_KEY`]: the only ones that grow with traffic.
pub const SHARDED: &[&str] = &[tables::LOGS, tables::LOGS_MINUTE];

/// A user's raw rows and rollup rows live on one shard, so a per-user query, a producer's
/// retry of an event (same user) and its first copy all meet on one shard.
pub const SHARDING_KEY: &str = "cityHash64(user_id)";

const SHARDING_COLUMN: &str = "user_id";

/// Settings of the single-server tables and what replaces them in the cluster.
const RENAMED_SETTINGS: &[(&str, &str)] = &[(
    "non_replicated_deduplication_window",
    "replicated_deduplication_window",
)];

/// A cluster as named in the servers' `remote_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    name: String,
}

impl Cluster {
    /// Refuses names that would need quoting (the name is spliced into DDL), as database
    /// names are.
    pub fn new(name: &str) -> Result<Self> {
        validate_database_name(name).map_err(|_| Error::InvalidClusterName(name.to_owned()))?;
        Ok(Self {
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where a table's rows are stored: `<table>_local` for a [`SHARDED`] one, the table itself
/// for the others.
pub fn storage_table(table: &str) -> String {
    if SHARDED.contains(&table) {
        format!("{table}_local")
    } else {
        table.to_owned()
    }
}

fn is_sharded(table: &str) -> bool {
    SHARDED.contains(&table)
}

/// `CREATE DATABASE` for `database`, on every server of `cluster` when there is one.
pub fn create_database(database: &str, cluster: Option<&Cluster>) -> Result<String> {
    validate_database_name(database)?;
    Ok(match cluster {
        None => format!("CREATE DATABASE IF NOT EXISTS `{database}`"),
        Some(c) => format!(
            "CREATE DATABASE IF NOT EXISTS `{database}` ON CLUSTER '{}'",
            c.name
        ),
    })
}

/// The statements that create `schema_migrations`, the record of applied migrations.
pub fn schema_migrations_ddl(database: &str, cluster: Option<&Cluster>) -> Result<Vec<String>> {
    statement_ddl(SCHEMA_MIGRATIONS_DDL, database, cluster)
}

/// The statements of `migration`, as written for one server or in their cluster variant.
pub fn migration_ddl(
    migration: &Migration,
    database: &str,
    cluster: Option<&Cluster>,
) -> Result<Vec<String>> {
    let mut ddl = Vec::new();
    for statement in migration.statements() {
        ddl.extend(statement_ddl(statement, database, cluster)?);
    }
    Ok(ddl)
}

/// Every statement `migrate` would run on a fresh `database`, as one script (statements
/// separated by lines holding only `;`), for review before a cluster is migrated.
pub fn script(database: &str, cluster: Option<&Cluster>) -> Result<String> {
    let mut out = format!("{}\n;\n", create_database(database, cluster)?);
    for statement in schema_migrations_ddl(database, cluster)? {
        out.push_str(&format!("{statement}\n;\n"));
    }
    for migration in MIGRATIONS {
        out.push_str(&format!(
            "-- migration {}: {}\n",
            migration.version, migration.name
        ));
        for statement in migration_ddl(migration, database, cluster)? {
            out.push_str(&format!("{statement}\n;\n"));
        }
    }
    Ok(out)
}

/// The cluster variant of one `ALTER TABLE` the code issues at run time (the retention's
/// TTLs, [`crate::ttl`]): on the storage table, `ON CLUSTER`.
pub fn alter_on_cluster(sql: &str, cluster: &Cluster) -> Result<String> {
    let variant = Variant {
        cluster: &cluster.name,
        database: "",
    };
    after_keywords(sql, &["ALTER", "TABLE"])
        .ok_or("not an ALTER TABLE")
        .and_then(|rest| variant.alter(rest))
        .map_err(|reason| Error::ClusterVariant {
            statement: sql.lines().next().unwrap_or_default().to_owned(),
            reason,
        })
}

fn statement_ddl(sql: &str, database: &str, cluster: Option<&Cluster>) -> Result<Vec<String>> {
    validate_database_name(database)?;
    let Some(cluster) = cluster else {
        return Ok(vec![sql.to_owned()]);
    };
    let variant = Variant {
        cluster: &cluster.name,
        database,
    };
    let code = strip_leading_comments(sql);
    variant
        .statement(code)
        .map_err(|reason| Error::ClusterVariant {
            statement: code.lines().next().unwrap_or_default().to_owned(),
            reason,
        })
}

fn strip_leading_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    while rest.starts_with("--") {
        rest = rest
            .split_once('\n')
            .map_or("", |(_, after)| after)
            .trim_start();
    }
    rest
}

type Rule<T> = std::result::Result<T, &'static str>;

struct Variant<'a> {
    cluster: &'a str,
    database: &'a str,
}

impl Variant<'_> {
    fn statement(&self, sql: &str) -> Rule<Vec<String>> {
        if let Some(rest) = after_keywords(sql, &["CREATE", "TABLE", "IF", "NOT", "EXISTS"]) {
            self.create_table(rest)
        } else if let Some(rest) = after_keywords(
            sql,
            &["CREATE", "MATERIALIZED", "VIEW", "IF", "NOT", "EXISTS"],
        ) {
            self.create_view(rest).map(|s| vec![s])
        } else if let Some(rest) = after_keywords(sql, &["ALTER", "TABLE"]) {
            self.alter(rest).map(|s| vec![s])
        } else if let Some(rest) = after_keywords(sql, &["INSERT", "INTO"]) {
            insert(sql, rest).map(|s| vec![s])
        } else {
            Err(
                "no cluster rule for this kind of statement (CREATE ... IF NOT EXISTS, ALTER TABLE and INSERT INTO have one)",
            )
        }
    }

    /// A `*MergeTree` table becomes its replicated twin under its storage name, plus, for a
    /// sharded table, the `Distributed` table under the original name.
    fn create_table(&self, rest: &str) -> Rule<Vec<String>> {
        let (name, rest) = identifier(rest).ok_or("no table name")?;
        let rest = rest.trim_start();
        let close = matching_paren(rest).ok_or("no column list")?;
        let (columns, after) = rest.split_at(close + 1);
        let clauses = clauses(after)?;
        let storage = storage_table(name);
        let sharded = is_sharded(name);
        let keeper_path = if sharded {
            format!("/clickhouse/tables/{{shard}}/{{database}}/{storage}")
        } else {
            format!("/clickhouse/tables/all/{{database}}/{storage}")
        };
        let mut local = vec![format!(
            "CREATE TABLE IF NOT EXISTS {storage} ON CLUSTER '{}'\n{columns}",
            self.cluster
        )];
        let mut comment = None;
        for clause in &clauses {
            local.push(match clause.keyword {
                "ENGINE" => replicated_engine(clause.text, &keeper_path)?,
                "SETTINGS" => rename_settings(clause.text),
                "COMMENT" => {
                    comment = Some(clause.text);
                    clause.text.to_owned()
                }
                _ => clause.text.to_owned(),
            });
        }
        if !clauses.iter().any(|c| c.keyword == "ENGINE") {
            return Err("no ENGINE clause");
        }
        let mut ddl = vec![local.join("\n")];
        if sharded {
            if !column_names(columns).contains(&SHARDING_COLUMN) {
                return Err("a sharded table needs the sharding column user_id");
            }
            let mut distributed = format!(
                "CREATE TABLE IF NOT EXISTS {name} ON CLUSTER '{c}' AS {storage}\n\
                 ENGINE = Distributed('{c}', '{db}', {storage}, {SHARDING_KEY})",
                c = self.cluster,
                db = self.database,
            );
            if let Some(comment) = comment {
                distributed.push('\n');
                distributed.push_str(comment);
            }
            ddl.push(distributed);
        }
        Ok(ddl)
    }

    /// The view runs where the rows are inserted: on each shard for a sharded source (into
    /// that shard's rollup), on the receiving server for a replicated one (whose target then
    /// replicates the view's rows everywhere).
    fn create_view(&self, rest: &str) -> Rule<String> {
        let (name, rest) = identifier(rest).ok_or("no view name")?;
        let rest = after_keywords(rest, &["TO"]).ok_or("a view needs an explicit TO table")?;
        let (target, body) = identifier(rest).ok_or("no TO table")?;
        let words = top_level_words(body);
        if words.iter().any(|w| w.is("JOIN")) {
            return Err("a view with a JOIN has no cluster rule");
        }
        // The word right after FROM, with nothing but blanks between: a table, not a subquery.
        let froms: Vec<&Word<'_>> = words
            .iter()
            .zip(words.iter().skip(1))
            .filter(|(keyword, _)| keyword.is("FROM"))
            .map(|(keyword, table)| (&body[keyword.end()..table.start], table))
            .filter(|(between, _)| between.trim().is_empty())
            .map(|(_, table)| table)
            .collect();
        if froms.len() != words.iter().filter(|w| w.is("FROM")).count() {
            return Err("a view must read a table, not a subquery");
        }
        let [source] = froms[..] else {
            return Err("a view needs exactly one FROM table at the top level");
        };
        if is_sharded(source.text) != is_sharded(target) {
            return Err("a view must read and write tables of the same placement");
        }
        Ok(format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {name} ON CLUSTER '{}' TO {}{}{}{}",
            self.cluster,
            storage_table(target),
            &body[..source.start],
            storage_table(source.text),
            &body[source.end()..],
        ))
    }

    /// ALTERs go to the storage table on every server; only actions that leave the columns
    /// (and so the `Distributed` table's copy of them) alone have a rule.
    fn alter(&self, rest: &str) -> Rule<String> {
        let (name, actions) = identifier(rest).ok_or("no table name")?;
        let mut in_settings = false;
        for action in split_top_level(actions, b',') {
            let words: Vec<&str> = action.split_whitespace().collect();
            let upper: Vec<String> = words.iter().take(2).map(|w| w.to_uppercase()).collect();
            in_settings = match (
                upper.first().map(String::as_str),
                upper.get(1).map(String::as_str),
            ) {
                (Some("MODIFY"), Some("SETTING")) => true,
                // The next `name = value` of a MODIFY SETTING list.
                (Some(_), Some("=")) if in_settings => true,
                (Some("MODIFY"), Some("COLUMN")) => {
                    let codec_only = words
                        .get(3)
                        .is_some_and(|w| w.to_uppercase().starts_with("CODEC("));
                    if !codec_only {
                        return Err(
                            "only codec changes of a column have a cluster rule (a type change must reach the Distributed table too)",
                        );
                    }
                    false
                }
                (Some("MODIFY" | "REMOVE"), Some("TTL"))
                | (Some("ADD" | "DROP" | "MATERIALIZE" | "CLEAR"), Some("PROJECTION" | "INDEX"))
                | (Some("COMMENT"), Some("COLUMN")) => false,
                _ => return Err("no cluster rule for this ALTER action"),
            };
        }
        Ok(format!(
            "ALTER TABLE {} ON CLUSTER '{}'{}",
            storage_table(name),
            self.cluster,
            rename_settings(actions)
        ))
    }
}

/// A backfill `INSERT ... SELECT` into a table replicated everywhere runs once, on one server:
/// replication brings its rows to the others.
fn insert(sql: &str, rest: &str) -> Rule<String> {
    let (target, _) = identifier(rest).ok_or("no INSERT table")?;
    if is_sharded(target) {
        return Err("an INSERT into a sharded table has no cluster rule");
    }
    Ok(sql.to_owned())
}

/// `ENGINE = XMergeTree[(args)]` → `ENGINE = ReplicatedXMergeTree('<path>', '{replica}'[, args])`.
fn replicated_engine(clause: &str, keeper_path: &str) -> Rule<String> {
    let rest = after_keywords(clause, &["ENGINE"]).ok_or("no ENGINE")?;
    let rest = rest.trim_start().strip_prefix('=').unwrap_or(rest);
    let (engine, rest) = identifier(rest).ok_or("no engine name")?;
    if !engine.ends_with("MergeTree") || engine.starts_with("Replicated") {
        return Err("only a non-replicated *MergeTree engine has a cluster rule");
    }
    let rest = rest.trim();
    let args = match matching_paren(rest) {
        Some(close) if close + 1 == rest.len() => rest[1..close].trim(),
        None if rest.is_empty() => "",
        _ => return Err("unexpected text after the engine"),
    };
    let extra = if args.is_empty() {
        String::new()
    } else {
        format!(", {args}")
    };
    Ok(format!(
        "ENGINE = Replicated{engine}('{keeper_path}', '{{replica}}'{extra})"
    ))
}

/// `sql` with the single-server settings renamed (words outside literals only).
fn rename_settings(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for word in top_level_words(sql) {
        if let Some((_, new)) = RENAMED_SETTINGS.iter().find(|(old, _)| word.is(old)) {
            out.push_str(&sql[copied..word.start]);
            out.push_str(new);
            copied = word.end();
        }
    }
    out.push_str(&sql[copied..]);
    out
}
