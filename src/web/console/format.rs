//! Template filters for the console: times, relative times and SLA countdowns, and
//! severities. Times reach templates as the RFC 3339 UTC strings the domain types
//! serialize to.

use chrono::{DateTime, Utc};
use minijinja::Environment;

/// Adds the console's filters to `env`.
pub fn register(env: &mut Environment<'static>) {
    env.add_filter("datetime", datetime);
    env.add_filter("ago", |value: Option<String>| -> String {
        relative(value.as_deref(), Utc::now(), false)
    });
    env.add_filter("countdown", |value: Option<String>| -> String {
        relative(value.as_deref(), Utc::now(), true)
    });
    env.add_filter("duration_ms", duration_ms);
    env.add_filter("severity_class", severity_class);
}

fn parse(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `2026-12-01 20:50:06 UTC`; an unparsable value is shown as given, nothing as a dash.
fn datetime(value: Option<String>) -> String {
    match value.as_deref() {
        None | Some("") => "—".into(),
        Some(v) => parse(v).map_or_else(
            || v.to_string(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        ),
    }
}

/// A span in the largest sensible unit: `45s`, `12m`, `3h 5m`, `2d 4h`.
pub fn span(seconds: i64) -> String {
    let s = seconds.abs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => match (s % 3600) / 60 {
            0 => format!("{}h", s / 3600),
            m => format!("{}h {m}m", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{}d", s / 86_400),
            h => format!("{}d {h}h", s / 86_400),
        },
    }
}

/// `5m ago` for past times; with `due`, `in 12m` or `overdue 3m`.
fn relative(value: Option<&str>, now: DateTime<Utc>, due: bool) -> String {
    let Some(t) = value.and_then(parse) else {
        return "—".into();
    };
    let secs = (t - now).num_seconds();
    match (due, secs >= 0) {
        (true, true) => format!("in {}", span(secs)),
        (true, false) => format!("overdue {}", span(secs)),
        (false, true) if secs < 5 => "just now".into(),
        (false, true) => format!("in {}", span(secs)),
        (false, false) => format!("{} ago", span(secs)),
    }
}

/// Milliseconds as `830 ms`, `4.2 s`, `3m`.
fn duration_ms(value: Option<f64>) -> String {
    match value {
        None => "—".into(),
        Some(ms) if ms < 1000.0 => format!("{ms:.0} ms"),
        Some(ms) if ms < 60_000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) => span((ms / 1000.0) as i64),
    }
}

/// The CSS class of an OCSF severity name or id.
fn severity_class(value: minijinja::Value) -> String {
    let name = match value.as_i64() {
        Some(id) => crate::alert::Severity::from_id(id).name().to_string(),
        None => value.to_string(),
    };
    format!("sev sev-{}", name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_use_the_largest_sensible_unit() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(59), "59s");
        assert_eq!(span(-125), "2m");
        assert_eq!(span(3600), "1h");
        assert_eq!(span(3600 + 300), "1h 5m");
        assert_eq!(span(2 * 86_400 + 4 * 3600 + 59), "2d 4h");
    }

    #[test]
    fn relative_times_and_countdowns() {
        let now = parse("2026-12-01T12:00:00Z").unwrap();
        let rel = |v: &str, due| relative(Some(v), now, due);
        assert_eq!(rel("2026-12-01T11:55:00Z", false), "5m ago");
        assert_eq!(rel("2026-12-01T12:12:00Z", true), "in 12m");
        assert_eq!(rel("2026-12-01T11:57:00Z", true), "overdue 3m");
        assert_eq!(relative(None, now, true), "—");
        assert_eq!(relative(Some("yesterday"), now, false), "—");
        assert_eq!(
            datetime(Some("2026-12-01T20:50:06.123456Z".into())),
            "2026-12-01 20:50:06 UTC"
        );
        assert_eq!(datetime(None), "—");
    }

    #[test]
    fn severities_become_classes() {
        assert_eq!(
            severity_class(minijinja::Value::from(5)),
            "sev sev-critical"
        );
        assert_eq!(
            severity_class(minijinja::Value::from("High")),
            "sev sev-high"
        );
    }
}
