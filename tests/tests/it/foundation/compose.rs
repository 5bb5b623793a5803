//! docker-compose.yml cannot run here (no Docker engine), so it is validated with
//! `docker-compose config`, which parses it, resolves variables and checks the schema: it is
//! valid once every password is given, refuses to render without one, and gives each service
//! its own ClickHouse user.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const PASSWORDS: [&str; 4] = [
    "CLICKHOUSE_ADMIN_PASSWORD",
    "LOGBUS_INGEST_CLICKHOUSE_PASSWORD",
    "LOGBUS_API_CLICKHOUSE_PASSWORD",
    "LOGBUS_READER_CLICKHOUSE_PASSWORD",
];

/// `docker-compose config <args>` with exactly the passwords in `set` (none inherited).
fn compose_config(args: &[&str], set: &[&str]) -> Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut command = Command::new("docker-compose");
    command
        .args(["-f", "docker-compose.yml", "config"])
        .args(args)
        .current_dir(&root);
    for name in PASSWORDS {
        command.env_remove(name);
    }
    for name in set {
        command.env(name, format!("test-{}", name.to_lowercase()));
    }
    command.output().expect(
        "docker-compose is installed (`make install` installs it: devstack/system-packages.sh)",
    )
}

/// `name: value` of each service's `environment` in compose's normalised output.
fn environments(rendered: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut services = BTreeMap::new();
    let (mut section, mut service, mut in_env) = (String::new(), None::<String>, false);
    for line in rendered.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        match indent {
            0 => section = text.trim_end_matches(':').to_owned(),
            2 if section == "services" => {
                service = Some(text.trim_end_matches(':').to_owned());
                in_env = false;
            }
            4 => in_env = text == "environment:",
            6 if in_env => {
                if let (Some(service), Some((name, value))) = (&service, text.split_once(": ")) {
                    services
                        .entry(service.clone())
                        .or_insert_with(BTreeMap::new)
                        .insert(name.to_owned(), value.trim_matches('\'').to_owned());
                }
            }
            _ => {}
        }
    }
    services
}

#[test]
fn docker_compose_file_is_valid_with_one_clickhouse_user_per_service() {
    let output = compose_config(&["--quiet"], &PASSWORDS);
    assert!(
        output.status.success(),
        "docker-compose config failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = compose_config(&["--services"], &PASSWORDS);
    let services = String::from_utf8_lossy(&rendered.stdout);
    for service in [
        "kafka",
        "clickhouse",
        "clickhouse-grants",
        "ingest",
        "query-api",
        "bridge",
    ] {
        assert!(
            services.lines().any(|s| s == service),
            "service {service} missing from {services}"
        );
    }

    let full = compose_config(&[], &PASSWORDS);
    let text = String::from_utf8_lossy(&full.stdout);
    assert!(!text.contains("change-me"), "no default password is left");
    let env = environments(&text);
    let user = |service: &str| env[service]["LOGBUS_CLICKHOUSE_USER"].clone();
    let password = |service: &str| env[service]["LOGBUS_CLICKHOUSE_PASSWORD"].clone();
    assert_eq!(user("ingest"), "logbus_ingest_user");
    assert_eq!(user("query-api"), "logbus_api_user");
    assert_eq!(password("ingest"), "test-logbus_ingest_clickhouse_password");
    assert_eq!(password("query-api"), "test-logbus_api_clickhouse_password");
    assert_eq!(
        env["clickhouse"]["CLICKHOUSE_USER"],
        user("clickhouse-grants"),
        "only the grants step connects as the administrator"
    );
    assert_eq!(
        env["clickhouse-grants"]["LOGBUS_GRANTS_INGEST_USER"],
        user("ingest")
    );
    assert_eq!(
        env["clickhouse-grants"]["LOGBUS_GRANTS_API_USER"],
        user("query-api")
    );
}

#[test]
fn docker_compose_refuses_to_start_without_each_password() {
    for missing in PASSWORDS {
        let set: Vec<&str> = PASSWORDS.into_iter().filter(|p| *p != missing).collect();
        let output = compose_config(&["--quiet"], &set);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{missing} unset must fail");
        assert!(
            stderr.contains(&format!("set {missing}")),
            "the error names {missing}: {stderr}"
        );
    }
}
