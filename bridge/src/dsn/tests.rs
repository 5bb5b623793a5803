use super::*;

fn mysql(dsn: &str) -> MySqlDsn {
    match parse(dsn, DEFAULT_SQLITE_PATH) {
        Ok(ParsedDsn::MySql(m)) => m,
        other => panic!("{dsn}: expected MySQL, got {other:?}"),
    }
}

#[test]
fn empty_and_local_mean_sqlite_at_new_apis_default_path() {
    for dsn in ["", "  ", "local", "local.db"] {
        assert_eq!(
            parse(dsn, DEFAULT_SQLITE_PATH),
            Ok(ParsedDsn::Sqlite(SqliteDsn {
                path: "one-api.db".into(),
                busy_timeout: Duration::from_secs(30),
            })),
            "{dsn:?}"
        );
    }
    assert_eq!(
        parse("local", "/data/new-api.db?_busy_timeout=5000"),
        Ok(ParsedDsn::Sqlite(SqliteDsn {
            path: "/data/new-api.db".into(),
            busy_timeout: Duration::from_millis(5000),
        }))
    );
}

#[test]
fn sqlite_paths_and_uris() {
    for (dsn, path) in [
        ("/data/one-api.db", "/data/one-api.db"),
        ("./one-api.db?_busy_timeout=30000", "./one-api.db"),
        (
            "sqlite:///var/lib/new-api/x.sqlite",
            "/var/lib/new-api/x.sqlite",
        ),
        ("file:one-api.db?mode=ro", "one-api.db"),
    ] {
        match parse(dsn, DEFAULT_SQLITE_PATH) {
            Ok(ParsedDsn::Sqlite(s)) => assert_eq!(s.path, path, "{dsn}"),
            other => panic!("{dsn}: {other:?}"),
        }
    }
    assert!(matches!(
        parse("x.db?_busy_timeout=soon", DEFAULT_SQLITE_PATH),
        Err(DsnError::Sqlite(_))
    ));
}

#[test]
fn postgres_urls_pass_through_and_key_value_dsns_are_split() {
    let url = "postgresql://root:p%40ss@db:5432/new-api?sslmode=disable";
    assert_eq!(
        parse(url, DEFAULT_SQLITE_PATH),
        Ok(ParsedDsn::PostgresUrl(url.into()))
    );
    assert!(matches!(
        parse("postgres://u@h/d", DEFAULT_SQLITE_PATH),
        Ok(ParsedDsn::PostgresUrl(_))
    ));
    let kv = parse(
        "host=db port=5433 user=newapi password='a \\'b\\' c' dbname=newapi sslmode=disable",
        DEFAULT_SQLITE_PATH,
    );
    let Ok(ParsedDsn::PostgresKeyValue(pairs)) = kv else {
        panic!("{kv:?}")
    };
    assert_eq!(pairs[3], ("password".into(), "a 'b' c".into()));
    assert_eq!(pairs[4], ("dbname".into(), "newapi".into()));
    let SourceOptions::Postgres(options) = ParsedDsn::PostgresKeyValue(pairs)
        .into_options()
        .expect("options")
    else {
        panic!("postgres")
    };
    assert_eq!(options.get_host(), "db");
    assert_eq!(options.get_port(), 5433);
    assert_eq!(options.get_database(), Some("newapi"));
}

#[test]
fn go_sql_driver_mysql_dsns() {
    assert_eq!(
        mysql("root:123456@tcp(localhost:3306)/oneapi"),
        MySqlDsn {
            user: "root".into(),
            password: Some("123456".into()),
            address: MySqlAddress::Tcp {
                host: "localhost".into(),
                port: 3306
            },
            database: "oneapi".into(),
            params: vec![],
        }
    );
    // A password may hold ':', '@' and '/': the last '@' before the last '/' ends it.
    let m = mysql("u:p:a@s/s@tcp(10.0.0.5:3307)/new_api?parseTime=true&loc=Asia%2FShanghai");
    assert_eq!(m.user, "u");
    assert_eq!(m.password.as_deref(), Some("p:a@s/s"));
    assert_eq!(
        m.address,
        MySqlAddress::Tcp {
            host: "10.0.0.5".into(),
            port: 3307
        }
    );
    assert_eq!(m.database, "new_api");
    assert_eq!(m.params[1], ("loc".into(), "Asia/Shanghai".into()));
    // Defaults of go-sql-driver: tcp to 127.0.0.1:3306, no credentials.
    let m = mysql("/oneapi");
    assert_eq!(m.user, "");
    assert_eq!(
        m.address,
        MySqlAddress::Tcp {
            host: "127.0.0.1".into(),
            port: 3306
        }
    );
    assert_eq!(
        mysql("u@unix(/run/mysqld/mysqld.sock)/db").address,
        MySqlAddress::Unix("/run/mysqld/mysqld.sock".into())
    );
    assert_eq!(
        mysql("u@tcp([::1]:3306)/db").address,
        MySqlAddress::Tcp {
            host: "::1".into(),
            port: 3306
        }
    );
    assert_eq!(
        mysql("u@tcp(db)/db").address,
        MySqlAddress::Tcp {
            host: "db".into(),
            port: 3306
        }
    );
}

#[test]
fn bad_mysql_dsns_are_explained() {
    for dsn in [
        "root:pw@tcp(db:3306)",
        "root:pw@tcp(db:3306/x",
        "u@tcp(db:port)/x",
        "u@udp(db)/x",
        "u@tcp(db)/",
    ] {
        assert!(
            matches!(parse(dsn, DEFAULT_SQLITE_PATH), Err(DsnError::MySql(_))),
            "{dsn}"
        );
    }
    let tls = mysql("u@tcp(db)/x?tls=custom");
    assert!(ParsedDsn::MySql(tls).into_options().is_err());
}

#[test]
fn descriptions_never_show_passwords() {
    for dsn in [
        "postgresql://root:secret@db:5432/new-api?sslmode=disable",
        "host=db user=u password=secret dbname=n",
        "root:secret@tcp(db:3306)/oneapi",
    ] {
        let parsed = parse(dsn, DEFAULT_SQLITE_PATH).expect("parses");
        let described = parsed.describe();
        assert!(!described.contains("secret"), "{described}");
        assert!(described.contains("db"), "{described}");
    }
    assert_eq!(
        redacted("invalid port in postgres://u:secret@h:x/d"),
        "the URL cannot be parsed"
    );
}
