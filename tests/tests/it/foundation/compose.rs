//! docker-compose.yml cannot run here (no Docker engine), so it is validated with
//! `docker-compose config`, which parses it, resolves variables and checks the schema.

use std::path::Path;
use std::process::Command;

#[test]
fn docker_compose_file_is_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "--quiet"])
        .current_dir(&root)
        .output()
        .expect(
            "docker-compose is installed (`make install` installs it: devstack/system-packages.sh)",
        );
    assert!(
        output.status.success(),
        "docker-compose config failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rendered = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "--services"])
        .current_dir(&root)
        .output()
        .expect("docker-compose runs");
    let services = String::from_utf8_lossy(&rendered.stdout);
    for service in ["kafka", "clickhouse", "ingest", "query-api", "bridge"] {
        assert!(
            services.lines().any(|s| s == service),
            "service {service} missing from {services}"
        );
    }
}
