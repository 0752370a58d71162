//! Every vendor normalizer against payloads written from the vendor's documentation.
//!
//! `tests/fixtures/<kind>/<case>.json` is one event as the vendor sends it. Beside it,
//! either `<case>.expected.json` (the normalized alerts, exactly) or `<case>.error.txt`
//! (the field the error must name). A `generic` fixture folder also has `config.json`, the
//! source configuration with its JSONPath mapping. The compliance test below holds every
//! kind to the same rules, and the fuzz test feeds each normalizer mutated fixtures.

use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tocsin::alert::Observable;
use tocsin::ingest::vendors::{self, SourceConfig, SourceKind, ALL_KINDS};

/// The kinds under test: all of them, or those named in `TOCSIN_FIXTURE_KINDS` (comma
/// separated) while one vendor is being worked on.
fn kinds() -> Vec<SourceKind> {
    match std::env::var("TOCSIN_FIXTURE_KINDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|k| k.trim().parse().unwrap_or_else(|e| panic!("{e}")))
            .collect(),
        _ => ALL_KINDS.to_vec(),
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn config_for(kind: SourceKind) -> SourceConfig {
    let path = fixtures_dir().join(kind.as_str()).join("config.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }
        Err(_) => SourceConfig::default(),
    }
}

/// Input events of a kind: (case name, event).
fn cases(kind: SourceKind) -> Vec<(String, Value)> {
    let dir = fixtures_dir().join(kind.as_str());
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(".json") || name.ends_with(".expected.json") || name == "config.json" {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let event: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name.trim_end_matches(".json").to_string(), event));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn fixtures_normalize_as_expected() {
    let mut checked = 0;
    for kind in kinds() {
        let config = config_for(kind);
        config
            .validate(kind)
            .unwrap_or_else(|e| panic!("{kind} config: {e}"));
        let dir = fixtures_dir().join(kind.as_str());
        for (case, event) in cases(kind) {
            let result = vendors::normalize(kind, &config, &event);
            let expected_path = dir.join(format!("{case}.expected.json"));
            let error_path = dir.join(format!("{case}.error.txt"));
            if let Ok(text) = std::fs::read_to_string(&expected_path) {
                let expected: Value = serde_json::from_str(&text).unwrap();
                let alerts = result.unwrap_or_else(|e| panic!("{kind}/{case}: {e}"));
                let actual = serde_json::to_value(&alerts).unwrap();
                assert_eq!(
                    actual,
                    expected,
                    "{kind}/{case}: got\n{}",
                    serde_json::to_string_pretty(&actual).unwrap()
                );
            } else if let Ok(field) = std::fs::read_to_string(&error_path) {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{kind}/{case} should fail"));
                assert_eq!(err.field, field.trim(), "{kind}/{case}: {err}");
            } else {
                panic!("{kind}/{case} has neither .expected.json nor .error.txt");
            }
            checked += 1;
        }
    }
    assert!(checked >= kinds().len() * 2, "only {checked} fixtures");
}

/// The rules every normalizer keeps, whatever the vendor.
#[test]
fn every_kind_complies() {
    for kind in kinds() {
        let config = config_for(kind);
        let all = cases(kind);
        let ok: Vec<_> = all
            .iter()
            .filter_map(|(case, event)| {
                vendors::normalize(kind, &config, event)
                    .ok()
                    .map(|a| (case, a))
            })
            .collect();
        assert!(
            ok.len() >= 2,
            "{kind} needs at least two fixtures that normalize"
        );
        assert!(
            all.len() > ok.len(),
            "{kind} needs at least one fixture that is refused (.error.txt)"
        );
        for (case, alerts) in ok {
            for alert in alerts {
                assert!(!alert.title.trim().is_empty(), "{kind}/{case}: empty title");
                assert!(
                    !alert.vendor.is_empty() && !alert.product.is_empty(),
                    "{kind}/{case}"
                );
                for o in &alert.observables {
                    let again = Observable::new(o.kind, &o.value, o.role)
                        .unwrap_or_else(|e| panic!("{kind}/{case}: {e}"));
                    assert_eq!(&again, o, "{kind}/{case}: observable not canonical");
                }
            }
        }
    }
}

#[test]
fn non_objects_are_refused_by_every_kind() {
    for kind in kinds() {
        for junk in [
            Value::Null,
            Value::from(1),
            Value::from("x"),
            serde_json::json!([1, 2]),
        ] {
            let err = vendors::normalize(kind, &config_for(kind), &junk).unwrap_err();
            assert_eq!(err.field, "(event)");
        }
    }
}

/// Random JSON values, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(Value::from("2026-11-25T10:00:00Z")),
        Just(Value::from("203.0.113.9")),
        Just(Value::from("hxxp://evil[.]example/x")),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Replaces the value at a pseudo-randomly chosen place in `event` with `with`.
fn mutate(event: &mut Value, mut choice: usize, with: Value) {
    let mut slot = event;
    loop {
        let children: usize = match slot {
            Value::Object(m) => m.len(),
            Value::Array(a) => a.len(),
            _ => 0,
        };
        if children == 0 || choice.is_multiple_of(4) {
            *slot = with;
            return;
        }
        let idx = (choice / 4) % children;
        choice /= 3;
        slot = match slot {
            Value::Object(m) => m.values_mut().nth(idx).expect("index in range"),
            Value::Array(a) => &mut a[idx],
            _ => unreachable!("has children"),
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No event, however mangled, makes a normalizer panic.
    #[test]
    fn normalizers_never_panic(kind_idx in any::<usize>(), fixture in any::<usize>(), choice in any::<usize>(), with in any_json(), raw in any_json()) {
        let kinds = kinds();
        let kind = kinds[kind_idx % kinds.len()];
        let config = config_for(kind);
        let _ = vendors::normalize(kind, &config, &raw);
        let all = cases(kind);
        if !all.is_empty() {
            let mut event = all[fixture % all.len()].1.clone();
            mutate(&mut event, choice, with);
            let _ = vendors::normalize(kind, &config, &event);
        }
    }
}
