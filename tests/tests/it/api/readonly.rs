//! The API reads with `readonly = 2`: whatever rights its ClickHouse user has, a read cannot
//! write. (The dev engine has no access control, so the roles themselves are checked only as
//! generated SQL, in `logbus_projections::grants`.)

use std::time::Duration;

use logbus_query_api::store::Store;

use crate::support::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_cannot_write_even_as_a_user_who_may() {
    let db = TestDatabase::migrated().await;
    // The test's own connection may write: the store's reads must not.
    db.client
        .query("INSERT INTO logs (event_id, created_at, type, user_id) VALUES (generateUUIDv4(), now(), 2, 1)")
        .execute()
        .await
        .expect("the test's user may write");
    let store = Store::new(db.client.clone(), Duration::from_secs(20));
    let reads = store.read_client();
    let count = reads
        .query("SELECT count() FROM logs")
        .fetch_one::<u64>()
        .await
        .expect("reads read");
    assert_eq!(count, 1);
    for write in [
        "INSERT INTO logs (event_id, created_at, type, user_id) VALUES (generateUUIDv4(), now(), 2, 1)",
        "ALTER TABLE logs DELETE WHERE 1",
        "DELETE FROM logs WHERE 1",
        "CREATE TABLE sneaky (x UInt8) ENGINE = Memory",
        "DROP TABLE logs",
    ] {
        let error = reads
            .query(write)
            .execute()
            .await
            .expect_err("a read refuses to write");
        let message = error.to_string();
        assert!(
            message.contains("READONLY") || message.contains("readonly"),
            "{write}: {message}"
        );
    }
    assert_eq!(
        db.count("SELECT count() FROM logs").await,
        1,
        "nothing changed"
    );
    db.drop_database().await;
}
