//! The `tocsin` command line: help, configuration, migrations and user management.

mod common;

use common::{Backend, TestDb};

const PW: &str = "correct horse battery";

#[test]
fn every_subcommand_has_help() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["user", "--help"],
        vec!["user", "add", "--help"],
        vec!["user", "list", "--help"],
        vec!["user", "set-role", "--help"],
        vec!["user", "disable", "--help"],
        vec!["token", "create", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "export", "--help"],
        vec!["config", "check", "--help"],
        vec!["backup", "--help"],
        vec!["retention", "run", "--help"],
    ] {
        let out = db.run_ok(&args);
        assert!(out.contains("Usage: tocsin"), "{args:?}: {out}");
    }
    let top = db.run_ok(&["--help"]);
    for cmd in [
        "serve",
        "migrate",
        "user",
        "audit",
        "config",
        "backup",
        "retention",
    ] {
        assert!(top.contains(cmd), "top-level help lacks {cmd}: {top}");
    }
    let serve = db.run_ok(&["serve", "--help"]);
    assert!(
        serve.contains("--role") && serve.contains("worker"),
        "{serve}"
    );
    let export = db.run_ok(&["audit", "export", "--help"]);
    assert!(export.contains("--since") && export.contains("--until") && export.contains("ndjson"));
}

#[test]
fn config_check_prints_effective_config_and_masks_password() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let out = db
        .tocsin()
        .args(["config", "check"])
        .env(
            "TOCSIN_DATABASE_URL",
            "postgres://tocsin:s3cret@db.internal/tocsin",
        )
        .env("TOCSIN_LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen = \"127.0.0.1:9999\""), "{text}");
    assert!(
        text.contains("postgres://tocsin:****@db.internal/tocsin"),
        "{text}"
    );
    assert!(!text.contains("s3cret"), "{text}");
}

#[test]
fn defaults_need_no_config_file() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let out = db
        .tocsin()
        .env_remove("TOCSIN_DATABASE_URL")
        .env_remove("TOCSIN_LOG_LEVEL")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
    assert!(text.contains("url = \"sqlite://data/tocsin.db\""), "{text}");
}

#[test]
fn bad_config_file_is_refused_with_key_and_reason() {
    let Some(db) = TestDb::new(Backend::Sqlite) else {
        return;
    };
    let path = common::path_in(&db, "bad.toml");
    for (content, expect) in [
        ("[database]\npool_size = \"lots\"\n", "database.pool_size"),
        ("[http]\nmax_body = 10\n", "max_body"),
        ("listen = \"not an address\"\n", "`listen`"),
        ("[database]\nurl = \"mysql://x\"\n", "database.url"),
        ("[log]\nformat = \"xml\"\n", "log.format"),
    ] {
        std::fs::write(&path, content).unwrap();
        let out = db
            .tocsin()
            .env_remove("TOCSIN_DATABASE_URL")
            .arg("--config")
            .arg(&path)
            .args(["config", "check"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{content}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{content:?} gave {err}");
    }
    // A serve with a bad file refuses to start as well.
    std::fs::write(&path, "[auth]\nsession_idle_minutes = -1\n").unwrap();
    let out = db
        .tocsin()
        .arg("--config")
        .arg(&path)
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("auth.session_idle_minutes"));
}

fn tables(db: &TestDb) -> i64 {
    match db.backend {
        Backend::Sqlite => db.query_i64(
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' \
             AND name IN ('users','sessions','api_tokens','setup_tokens','audit_events','audit_head')",
        ),
        Backend::Postgres => db.query_i64(
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public' \
             AND table_name IN ('users','sessions','api_tokens','setup_tokens','audit_events','audit_head')",
        ),
    }
}

fn migrations_apply_and_revert(db: TestDb) {
    let out = db.run_ok(&["migrate", "--status"]);
    assert!(out.contains("pending"), "{out}");
    let out = db.run_ok(&["migrate"]);
    assert!(out.contains("applied"), "{out}");
    assert_eq!(tables(&db), 6);
    assert!(db.run_ok(&["migrate"]).contains("up to date"));
    let out = db.run_ok(&["migrate", "--revert-all"]);
    assert!(out.contains("reverted"), "{out}");
    assert_eq!(tables(&db), 0);
    db.run_ok(&["migrate"]);
    assert_eq!(tables(&db), 6);
    // The migrated schema works: a user can be created and listed.
    db.add_user("alice", "admin", PW);
    assert!(db.run_ok(&["user", "list"]).contains("alice"));
}

fn user_management(db: TestDb) {
    db.add_user("Alice", "admin", PW);
    db.add_user("bob", "viewer", PW);
    let list: serde_json::Value =
        serde_json::from_str(&db.run_ok(&["user", "list", "--json"])).unwrap();
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(list[0].get("password_hash").is_none());

    assert!(db
        .run_ok(&["user", "set-role", "bob", "responder"])
        .contains("responder"));
    assert!(db.run_ok(&["user", "disable", "bob"]).contains("disabled"));
    let table = db.run_ok(&["user", "list"]);
    let bob = table.lines().find(|l| l.starts_with("bob")).unwrap();
    assert!(
        bob.contains("responder") && bob.contains("disabled"),
        "{bob}"
    );

    // Refusals: duplicate user, weak password, unknown role, last admin.
    let dup = db.run_with_stdin(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        PW,
    );
    assert_eq!(dup.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let weak = db.run_with_stdin(
        &[
            "user",
            "add",
            "carol",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "short\n",
    );
    assert_eq!(weak.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password"));
    let role = db
        .tocsin()
        .args(["user", "set-role", "bob", "root"])
        .output()
        .unwrap();
    assert!(!role.status.success());
    assert!(String::from_utf8_lossy(&role.stderr).contains("unknown role"));
    let last = db
        .tocsin()
        .args(["user", "disable", "alice"])
        .output()
        .unwrap();
    assert_eq!(last.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&last.stderr).contains("last active admin"));

    // Every change is in the audit trail, attributed to the command line.
    let created = db.audit_with_action("user.created");
    assert_eq!(created.len(), 2);
    assert_eq!(created[0]["actor_kind"], "system");
    assert_eq!(created[0]["actor_id"], "cli");
    assert_eq!(created[0]["target"], "user:alice");
    let role_changed = db.audit_with_action("user.role_changed");
    assert_eq!(role_changed.len(), 1);
    assert_eq!(role_changed[0]["details"]["from"], "viewer");
    assert_eq!(role_changed[0]["details"]["to"], "responder");
    assert_eq!(db.audit_with_action("user.disabled").len(), 1);
    // The refused changes left nothing behind.
    assert_eq!(db.audit_events().len(), 4);
}

both_backends!(migrations_apply_and_revert, user_management);
