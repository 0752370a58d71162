//! The audit chain: `tocsin audit verify` catches every kind of tampering done directly in
//! the database, an untouched long chain verifies, and export filters by time.

mod common;

use common::{Backend, TestDb};
use tocsin::audit::{self, Actor, NewEvent};

/// Appends `n` events through the library, in transactions of 1,000.
fn seed(db: &TestDb, n: usize) {
    db.run_ok(&["migrate"]);
    let handle = db.open();
    let actor = Actor::system("test");
    let mut left = n;
    while left > 0 {
        let batch = left.min(1_000);
        handle
            .write_sync(|conn| {
                for i in 0..batch {
                    audit::append(
                        conn,
                        NewEvent::new(
                            &actor,
                            "test.event",
                            format!("thing:{i}"),
                            serde_json::json!({ "i": i, "note": "x" }),
                        ),
                    )?;
                }
                Ok::<_, audit::AuditError>(())
            })
            .expect("seed events");
        left -= batch;
    }
}

/// Runs `audit verify --json`; returns the exit code and the report.
fn verify(db: &TestDb) -> (i32, serde_json::Value) {
    let out = db
        .tocsin()
        .args(["audit", "verify", "--json"])
        .output()
        .expect("run verify");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

/// Tampering as a database owner would do it; on PostgreSQL the append-only trigger must be
/// bypassed first, which only a superuser can do.
fn tamper(db: &TestDb, sql: &str) {
    let sql = match db.backend {
        Backend::Sqlite => sql.to_string(),
        Backend::Postgres => format!("SET session_replication_role = replica; {sql}"),
    };
    db.exec(&sql).expect("tamper");
}

fn first_bad(report: &serde_json::Value) -> i64 {
    report["first_bad"]["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("no bad event in {report}"))
}

fn intact_chain_of_ten_thousand_verifies(db: TestDb) {
    seed(&db, 10_000);
    let (code, report) = verify(&db);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["events_checked"], 10_000);
    assert_eq!(report["head_seq"], 10_000);
    assert!(report["first_bad"].is_null());
    let text = db.run_ok(&["audit", "verify"]);
    assert!(
        text.contains("intact") && text.contains("10000 events"),
        "{text}"
    );
}

fn edited_event_is_detected(db: TestDb) {
    seed(&db, 50);
    tamper(
        &db,
        "UPDATE audit_events SET details = '{\"i\":17,\"note\":\"y\"}' WHERE seq = 18",
    );
    let (code, report) = verify(&db);
    assert_eq!(code, 1);
    assert_eq!(first_bad(&report), 18);
    assert!(report["first_bad"]["reason"]
        .as_str()
        .unwrap()
        .contains("edited"));
    assert_eq!(report["events_checked"], 17);
}

fn edited_and_rehashed_event_is_detected(db: TestDb) {
    seed(&db, 50);
    // A careful forger recomputes the edited event's own hash; the next event's link breaks.
    let handle = db.open();
    let mut conn = handle.conn().unwrap();
    use diesel::prelude::*;
    use tocsin::db::schema::audit_events::dsl::*;
    let event: audit::AuditEvent = audit_events
        .filter(seq.eq(30))
        .select(audit::AuditEvent::as_select())
        .first(&mut *conn)
        .unwrap();
    let mut forged = event.clone();
    forged.action = "test.innocent".into();
    let new_hash = forged.computed_hash();
    drop(conn);
    tamper(
        &db,
        &format!(
            "UPDATE audit_events SET action = 'test.innocent', hash = '{new_hash}' WHERE seq = 30"
        ),
    );
    let (code, report) = verify(&db);
    assert_eq!(code, 1);
    assert_eq!(first_bad(&report), 31);
}

fn deleted_event_is_detected(db: TestDb) {
    seed(&db, 50);
    tamper(&db, "DELETE FROM audit_events WHERE seq = 25");
    let (code, report) = verify(&db);
    assert_eq!(code, 1);
    assert_eq!(first_bad(&report), 26);
    assert!(report["first_bad"]["reason"]
        .as_str()
        .unwrap()
        .contains("expected event 25"));
}

fn deleted_tail_is_detected(db: TestDb) {
    seed(&db, 50);
    tamper(&db, "DELETE FROM audit_events WHERE seq > 45");
    let (code, report) = verify(&db);
    assert_eq!(code, 1);
    assert_eq!(first_bad(&report), 46);
    assert!(report["first_bad"]["reason"]
        .as_str()
        .unwrap()
        .contains("deleted"));
}

fn inserted_event_is_detected(db: TestDb) {
    seed(&db, 50);
    // Make room at 20 by shifting later events, then insert a forged event with a valid
    // link to its predecessor.
    let prev: String = {
        let handle = db.open();
        let mut conn = handle.conn().unwrap();
        use diesel::prelude::*;
        use tocsin::db::schema::audit_events::dsl::*;
        audit_events
            .filter(seq.eq(19))
            .select(hash)
            .first(&mut *conn)
            .unwrap()
    };
    let when = chrono::Utc::now().naive_utc();
    let forged = audit::event_hash(
        20,
        &when,
        "user",
        "mallory",
        "user.created",
        "user:mallory",
        "{}",
        &prev,
    );
    tamper(
        &db,
        &format!(
            "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 20; \
             UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1020; \
             INSERT INTO audit_events (seq, occurred_at, actor_kind, actor_id, action, target, details, prev_hash, hash) \
             VALUES (20, '{}', 'user', 'mallory', 'user.created', 'user:mallory', '{{}}', '{prev}', '{forged}')",
            when.format("%Y-%m-%d %H:%M:%S%.6f")
        ),
    );
    let (code, report) = verify(&db);
    assert_eq!(code, 1, "{report}");
    // The forged event itself may pass (its link and hash were made right); the first
    // original event after it no longer fits.
    assert_eq!(first_bad(&report), 21);
}

fn reordered_events_are_detected(db: TestDb) {
    seed(&db, 50);
    tamper(
        &db,
        "UPDATE audit_events SET seq = -1 WHERE seq = 10; \
         UPDATE audit_events SET seq = 10 WHERE seq = 11; \
         UPDATE audit_events SET seq = 11 WHERE seq = -1",
    );
    let (code, report) = verify(&db);
    assert_eq!(code, 1);
    assert_eq!(first_bad(&report), 10);
}

fn head_rewind_is_detected(db: TestDb) {
    seed(&db, 50);
    tamper(&db, "UPDATE audit_head SET seq = 40");
    let (code, report) = verify(&db);
    assert_eq!(code, 1);
    assert!(report["first_bad"]["reason"]
        .as_str()
        .unwrap()
        .contains("head"));
}

fn export_filters_by_time_in_both_formats(db: TestDb) {
    seed(&db, 5);
    // Move two events into the past so a time range can separate them.
    tamper(
        &db,
        "UPDATE audit_events SET occurred_at = '2020-01-01 00:00:00' WHERE seq IN (1, 2)",
    );
    let nd = db.run_ok(&["audit", "export", "--since", "2021-01-01"]);
    let seqs: Vec<i64> = nd
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    let first: serde_json::Value = serde_json::from_str(nd.lines().next().unwrap()).unwrap();
    assert_eq!(first["details"]["i"], 2);
    assert_eq!(first["action"], "test.event");

    let csv = db.run_ok(&[
        "audit",
        "export",
        "--until",
        "2021-01-01T00:00:00Z",
        "--format",
        "csv",
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "seq,occurred_at,actor_kind,actor_id,action,target,details,prev_hash,hash"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[1].starts_with("1,2020-01-01T00:00:00.000000Z,system,test,test.event,thing:0,"),
        "{csv}"
    );

    let file = common::path_in(&db, "out.ndjson");
    db.run_ok(&["audit", "export", "--output", file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 5);

    let bad = db
        .tocsin()
        .args(["audit", "export", "--since", "last tuesday"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("last tuesday"));
}

both_backends!(
    intact_chain_of_ten_thousand_verifies,
    edited_event_is_detected,
    edited_and_rehashed_event_is_detected,
    deleted_event_is_detected,
    deleted_tail_is_detected,
    inserted_event_is_detected,
    reordered_events_are_detected,
    head_rewind_is_detected,
    export_filters_by_time_in_both_formats,
);

#[test]
fn postgres_trigger_refuses_update_and_delete() {
    let Some(db) = TestDb::new(Backend::Postgres) else {
        return;
    };
    seed(&db, 3);
    let update = db
        .exec("UPDATE audit_events SET action = 'x' WHERE seq = 1")
        .unwrap_err();
    assert!(update.contains("append-only"), "{update}");
    let delete = db
        .exec("DELETE FROM audit_events WHERE seq = 1")
        .unwrap_err();
    assert!(delete.contains("append-only"), "{delete}");
    let truncate = db.exec("TRUNCATE audit_events").unwrap_err();
    assert!(truncate.contains("append-only"), "{truncate}");
    assert_eq!(db.query_i64("SELECT COUNT(*) AS n FROM audit_events"), 3);
    assert_eq!(verify(&db).0, 0);
}
