//! docs/analytics.md's worked queries, run against the real engine on a small known data set:
//! every ```sql block of the guide is extracted from the guide itself (so the two cannot
//! drift) and its result compared with values worked out by hand for the rows below.

use crate::support::TestDatabase;

const GUIDE: &str = include_str!("../../../../docs/analytics.md");

/// Columns of the rows below; the rest of `logs` keeps its defaults.
const LOG_COLUMNS: &str = "created_at, type, user_id, username, token_id, token_name, model_name, \
    quota, prompt_tokens, completion_tokens, use_time, is_stream, channel_id, channel_name, \
    `group`, other, content";

/// Two inserts, so that the rollup holds two rows for one (minute, key) in both 2026-01-01
/// 10:00 (alice, token 11) and 11:20 (carol): a query that reads rollup rows without `sum()`
/// gets them wrong. The last row of the first insert lies after every range of the guide.
const LOGS_FIRST: &str = "
('2026-01-01 10:00:05',2,1,'alice',11,'alice-ci','gpt-4o',1000,1000,200,2,1,1,'openai-main','default','{\"cache_tokens\":400,\"frt\":800}',''),
('2026-01-01 10:30:00',2,2,'bob',21,'bob-main','claude-sonnet-4',5000,3000,1000,10,0,2,'anthropic-main','vip','{\"cache_tokens\":1500,\"cache_creation_tokens\":500,\"frt\":2000}',''),
('2026-01-01 11:15:00',5,2,'bob',21,'bob-main','claude-sonnet-4',0,0,0,1,0,2,'anthropic-main','vip','{}','upstream error: 529 overloaded'),
('2026-01-01 11:20:00',2,3,'carol',31,'carol-dev','gpt-4o',500,500,100,1,0,3,'openai-backup','default','{\"cache_tokens\":100,\"frt\":500}',''),
('2026-01-01 12:00:00',5,3,'carol',31,'carol-dev','gpt-4o',0,0,0,0,0,3,'openai-backup','default','{}','upstream error: 429 rate limited'),
('2026-01-01 12:05:00',6,1,'alice',11,'alice-ci','gpt-4o',300,0,0,0,0,1,'openai-main','default','{}','refund: upstream error'),
('2026-01-02 09:00:00',2,1,'alice',12,'alice-web','gpt-4o',3000,2500,800,6,1,1,'openai-main','default','{\"cache_tokens\":1000,\"frt\":900}',''),
('2026-01-02 09:10:00',2,2,'bob',22,'bob-batch','gpt-4o',1500,1200,300,3,0,3,'openai-backup','vip','{\"cache_tokens\":0,\"frt\":700}',''),
('2026-01-02 13:00:00',2,3,'carol',31,'carol-dev','claude-sonnet-4',2500,1500,500,8,1,2,'anthropic-main','default','{\"cache_tokens\":0,\"frt\":1800}',''),
('2026-01-03 00:00:10',2,1,'alice',12,'alice-web','gpt-4o',9999,1000,100,2,1,1,'openai-main','default','{\"cache_tokens\":0,\"frt\":400}','')";

const LOGS_SECOND: &str = "
('2026-01-01 10:00:40',2,1,'alice',11,'alice-ci','gpt-4o',2000,2000,400,4,1,1,'openai-main','default','{\"cache_tokens\":0,\"frt\":1200}',''),
('2026-01-01 11:20:30',2,3,'carol',31,'carol-dev','gpt-4o',200,200,50,1,0,3,'openai-backup','default','{\"cache_tokens\":0,\"frt\":600}',''),
('2026-01-02 09:00:30',2,2,'bob',21,'bob-main','claude-sonnet-4',7000,4000,1500,12,1,2,'anthropic-main','vip','{\"cache_tokens\":2000,\"frt\":1500}',''),
('2026-01-02 09:20:00',5,1,'alice',12,'alice-web','gpt-4o',0,0,0,30,0,1,'openai-main','default','{}','upstream error: timeout'),
('2026-01-02 10:00:00',5,2,'bob',21,'bob-main','claude-sonnet-4',0,0,0,2,0,2,'anthropic-main','vip','{}','upstream error: 529 overloaded'),
('2026-01-02 23:59:59',1,1,'alice',0,'','',500000,0,0,0,0,0,'','default','{}','online top-up')";

/// Bob was disabled, then enabled again; carol was renamed caroline and disabled. Versions 2
/// come in a second insert, so without `FINAL` bob's disabled version is still read.
const USERS_FIRST: &str = "(1,'alice',1,1,'default','',1), (2,'bob',1,2,'vip','',1), \
    (3,'carol',1,1,'default','',1)";
const USERS_SECOND: &str = "(2,'bob',1,1,'vip','',2), (3,'caroline',1,2,'default','',2)";

/// The expected rows (TabSeparated) of each worked query, by its heading in the guide.
/// Worked out by hand from the rows above: consume logs (type 2) within 2026-01-01 and
/// 2026-01-02 are alice 1000+2000 (token 11) and 3000 (token 12), bob 5000 and 7000
/// (claude, token 21) and 1500 (gpt-4o, token 22), carol 500+200 (gpt-4o) and 2500 (claude).
const EXPECTED: &[(&str, &[&str])] = &[
    (
        "1. Spend per model per day",
        &[
            "2026-01-01\tclaude-sonnet-4\t1\t5000\t0.01",
            "2026-01-01\tgpt-4o\t4\t3700\t0.0074",
            "2026-01-02\tclaude-sonnet-4\t2\t9500\t0.019",
            "2026-01-02\tgpt-4o\t2\t4500\t0.009",
        ],
    ),
    (
        "2. Top users by quota",
        &[
            "2\tbob\t3\t13500\t0.027",
            "1\talice\t3\t6000\t0.012",
            "3\tcarol\t3\t3200\t0.0064",
        ],
    ),
    (
        "3. Error rate per channel",
        &["2\t3\t2\t0.4", "1\t3\t1\t0.25", "3\t3\t1\t0.25"],
    ),
    (
        "4. p95 use_time per model",
        // gpt-4o's use_time sorted: 1 1 2 3 4 6; claude's: 8 10 12.
        &["claude-sonnet-4\t3\t10\t12\t12", "gpt-4o\t6\t3\t6\t6"],
    ),
    (
        "5. Tokens per group",
        &["vip\t8200\t2800\t11000", "default\t7700\t2050\t9750"],
    ),
    (
        "6. Cache-token share per model",
        // 3500 / 8500 and 1500 / 7400.
        &[
            "claude-sonnet-4\t8500\t3500\t500\t0.4118",
            "gpt-4o\t7400\t1500\t0\t0.2027",
        ],
    ),
    (
        "7. Net spend per user after refunds",
        &[
            "2\tbob\t13500\t0\t13500",
            "1\talice\t6000\t300\t5700",
            "3\tcarol\t3200\t0\t3200",
        ],
    ),
    (
        "8. Requests and quota per hour (hourly projection)",
        &[
            "2026-01-02 09:00:00\t3\t11500",
            "2026-01-02 13:00:00\t1\t2500",
        ],
    ),
    (
        "9. Spend per API token",
        &[
            "21\tbob-main\t2\t2\t12000",
            "31\tcarol-dev\t3\t3\t3200",
            "11\talice-ci\t1\t2\t3000",
            "12\talice-web\t1\t1\t3000",
            "22\tbob-batch\t2\t1\t1500",
        ],
    ),
    (
        "10. Streaming share and mean duration per model",
        // gpt-4o: 17 s over 6 requests.
        &[
            "claude-sonnet-4\t3\t2\t0.6667\t10",
            "gpt-4o\t6\t3\t0.5\t2.83",
        ],
    ),
    (
        "11. Time to first response per model",
        // claude 5300 / 3, gpt-4o 4700 / 6; medians of 1500 1800 2000 and 500 … 1200.
        &["claude-sonnet-4\t3\t1766.7\t1800", "gpt-4o\t6\t783.3\t800"],
    ),
    (
        "12. Daily active users and tokens",
        &["2026-01-01\t3\t3\t5", "2026-01-02\t3\t4\t4"],
    ),
    (
        "13. Most frequent errors",
        &[
            "claude-sonnet-4\tupstream error: 529 overloaded\t2\t2026-01-02 10:00:00",
            "gpt-4o\tupstream error: 429 rate limited\t1\t2026-01-01 12:00:00",
            "gpt-4o\tupstream error: timeout\t1\t2026-01-02 09:20:00",
        ],
    ),
    (
        "14. Top-ups and refunds per day",
        &["2026-01-01\t0\t300", "2026-01-02\t500000\t0"],
    ),
    (
        "15. Spend of users disabled since (admins only)",
        &["3\tcaroline\t3\t3200"],
    ),
];

/// The guide's ```sql blocks, each with the `### ` heading above it.
fn worked_queries(markdown: &str) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    let mut heading = String::new();
    let mut block: Option<String> = None;
    for line in markdown.lines() {
        match &mut block {
            Some(sql) if line.trim_start().starts_with("```") => {
                queries.push((heading.clone(), sql.trim().trim_end_matches(';').to_owned()));
                block = None;
            }
            Some(sql) => {
                sql.push_str(line);
                sql.push('\n');
            }
            None if line.trim_start().starts_with("```sql") => block = Some(String::new()),
            None => {
                if let Some(title) = line.strip_prefix("### ") {
                    heading = title.trim().to_owned();
                }
            }
        }
    }
    assert!(block.is_none(), "an unterminated ```sql block in the guide");
    queries
}

async fn run(db: &TestDatabase, sql: &str) -> Vec<String> {
    let mut cursor = db
        .client
        .query(sql)
        .fetch_bytes("TabSeparated")
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let bytes = cursor
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    String::from_utf8(bytes.to_vec())
        .expect("UTF-8 result")
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn execute(db: &TestDatabase, sql: &str) {
    db.client
        .query(sql)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[tokio::test]
async fn the_analysts_guide_queries_give_the_documented_results() {
    let queries = worked_queries(GUIDE);
    assert!(
        queries.len() >= 12,
        "the guide has {} queries",
        queries.len()
    );
    let documented: Vec<&str> = queries.iter().map(|(h, _)| h.as_str()).collect();
    let expected: Vec<&str> = EXPECTED.iter().map(|(h, _)| *h).collect();
    assert_eq!(
        documented, expected,
        "every worked query of docs/analytics.md, under its own heading, has expected rows here"
    );

    let db = TestDatabase::migrated().await;
    // Merges would add up the split rollup rows (and drop old user versions) at a time of the
    // engine's choosing; stopped, the queries must cope with the unmerged state every reader
    // may meet.
    for table in ["logs_minute", "users"] {
        execute(&db, &format!("SYSTEM STOP MERGES {table}")).await;
    }
    for values in [LOGS_FIRST, LOGS_SECOND] {
        execute(
            &db,
            &format!("INSERT INTO logs ({LOG_COLUMNS}) VALUES {values}"),
        )
        .await;
    }
    for values in [USERS_FIRST, USERS_SECOND] {
        let columns = "id, username, role, status, `group`, access_token_sha256, version";
        execute(
            &db,
            &format!("INSERT INTO users ({columns}) VALUES {values}"),
        )
        .await;
    }
    let split_keys = db
        .count(
            "SELECT count() FROM (SELECT minute, user_id, token_id FROM logs_minute
             GROUP BY ALL HAVING count() > 1)",
        )
        .await;
    assert_eq!(split_keys, 2, "the rollup holds unmerged rows of two keys");

    for ((heading, sql), (_, rows)) in queries.iter().zip(EXPECTED) {
        let got = run(&db, sql).await;
        assert_eq!(got, *rows, "{heading}:\n{sql}");
        if heading.contains("(hourly projection)") {
            // The guide promises that this shape is answered from the projection.
            let plan = run(&db, &format!("EXPLAIN {sql}")).await.join("\n");
            assert!(plan.contains("(stat_hour)"), "{heading}:\n{plan}");
        }
    }
    db.drop_database().await;
}
