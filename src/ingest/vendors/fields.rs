//! Reading vendor payloads: typed access by JSON pointer whose errors name the field, time
//! parsing, and observables whose validation errors name the field they came from.

use super::NormalizeError;
use crate::alert::{NewAlert, Observable, ObservableError, ObservableKind, ObservableRole};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

/// The dotted name of a JSON pointer, for messages: `/result/src_ip` → `result.src_ip`.
pub fn field_name(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// The value at `pointer`, treating JSON `null` as absent.
pub fn get<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|x| !x.is_null())
}

/// A string at `pointer`; absent is `None`, a non-string is an error naming the field.
/// Numbers and booleans are accepted as their text, since vendors are loose about it.
pub fn opt_str(v: &Value, pointer: &str) -> Result<Option<String>, NormalizeError> {
    match get(v, pointer) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(NormalizeError::wrong_type(pointer, "a string")),
    }
}

/// A required string at `pointer`.
pub fn req_str(v: &Value, pointer: &str) -> Result<String, NormalizeError> {
    opt_str(v, pointer)?.ok_or_else(|| NormalizeError::missing(pointer))
}

/// An integer at `pointer`, given as a number or a numeric string.
pub fn opt_i64(v: &Value, pointer: &str) -> Result<Option<i64>, NormalizeError> {
    match get(v, pointer) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| NormalizeError::wrong_type(pointer, "an integer")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| NormalizeError::wrong_type(pointer, "an integer")),
        Some(_) => Err(NormalizeError::wrong_type(pointer, "an integer")),
    }
}

/// A number at `pointer`, given as a number or a numeric string.
pub fn opt_f64(v: &Value, pointer: &str) -> Result<Option<f64>, NormalizeError> {
    match get(v, pointer) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| NormalizeError::wrong_type(pointer, "a number")),
        Some(_) => Err(NormalizeError::wrong_type(pointer, "a number")),
    }
}

/// An array at `pointer`; absent is empty.
pub fn opt_array<'a>(v: &'a Value, pointer: &str) -> Result<&'a [Value], NormalizeError> {
    match get(v, pointer) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(NormalizeError::wrong_type(pointer, "an array")),
    }
}

/// An object at `pointer`; absent is `None`.
pub fn opt_object<'a>(
    v: &'a Value,
    pointer: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, NormalizeError> {
    match get(v, pointer) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(NormalizeError::wrong_type(pointer, "an object")),
    }
}

/// Parses a time: RFC 3339 (`2026-11-25T10:00:00Z`, offsets, fractions), the same with a
/// space or without a zone (taken as UTC), Wazuh's `+0000` offsets, or Unix seconds
/// (milliseconds when the number is too large to be seconds).
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%:z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(t, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, fmt) {
            return Some(d.and_utc());
        }
    }
    if let Ok(n) = t.parse::<f64>() {
        return epoch(n);
    }
    None
}

fn epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    // Past 1e11 seconds is the year 5138: such a number is milliseconds.
    let secs = if n > 1e11 { n / 1000.0 } else { n };
    let whole = secs.trunc() as i64;
    let nanos = ((secs.fract()) * 1e9) as u32;
    Utc.timestamp_opt(whole, nanos).single()
}

/// A time at `pointer` (string or epoch number); unparseable is an error naming the field.
pub fn opt_time(v: &Value, pointer: &str) -> Result<Option<DateTime<Utc>>, NormalizeError> {
    match get(v, pointer) {
        None => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_time(s)
            .map(Some)
            .ok_or_else(|| NormalizeError::invalid(pointer, format!("{s:?} is not a time"))),
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(epoch)
            .map(Some)
            .ok_or_else(|| NormalizeError::invalid(pointer, format!("{n} is not a time"))),
        Some(_) => Err(NormalizeError::wrong_type(pointer, "a time")),
    }
}

/// Adds an observable read from `field`; an invalid value is an error naming the field.
pub fn observe(
    alert: &mut NewAlert,
    kind: ObservableKind,
    value: &str,
    role: Option<ObservableRole>,
    field: &str,
) -> Result<(), NormalizeError> {
    let observable = Observable::new(kind, value, role)
        .map_err(|e| NormalizeError::invalid(field, e.to_string()))?;
    alert.observe(observable);
    Ok(())
}

/// Adds an observable from the string at `pointer` when present.
pub fn observe_at(
    alert: &mut NewAlert,
    v: &Value,
    pointer: &str,
    kind: ObservableKind,
    role: Option<ObservableRole>,
) -> Result<(), NormalizeError> {
    if let Some(value) = opt_str(v, pointer)? {
        observe(alert, kind, &value, role, pointer)?;
    }
    Ok(())
}

/// The strings at `pointer`, each with its own pointer for messages: a string (or number or
/// boolean) gives one, an array gives each element (`/x/0`, `/x/1`, ...); absent, null and
/// empty values give none. Vendors write multi-valued fields (Splunk multivalue results,
/// ECS fields) as arrays.
pub fn opt_strs(v: &Value, pointer: &str) -> Result<Vec<(String, String)>, NormalizeError> {
    match get(v, pointer) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for i in 0..items.len() {
                let item = format!("{pointer}/{i}");
                if let Some(s) = opt_str(v, &item)? {
                    out.push((item, s));
                }
            }
            Ok(out)
        }
        Some(_) => Ok(opt_str(v, pointer)?
            .map(|s| (pointer.to_string(), s))
            .into_iter()
            .collect()),
    }
}

/// Adds an observable for every string at `pointer` (one value or an array, see
/// `opt_strs`); an invalid value is an error naming its field.
pub fn observe_each_at(
    alert: &mut NewAlert,
    v: &Value,
    pointer: &str,
    kind: ObservableKind,
    role: Option<ObservableRole>,
) -> Result<(), NormalizeError> {
    for (field, value) in opt_strs(v, pointer)? {
        observe(alert, kind, &value, role, &field)?;
    }
    Ok(())
}

/// Like `observe_each_at`, for free-form text a vendor copies from traffic or logs (an HTTP
/// Host header, a TLS SNI, a file name): a value that is not a valid observable of `kind`
/// is skipped rather than refused, so a malformed or hostile value cannot get the alert
/// itself rejected. A value of the wrong JSON type is still an error.
pub fn observe_free_form_at(
    alert: &mut NewAlert,
    v: &Value,
    pointer: &str,
    kind: ObservableKind,
    role: Option<ObservableRole>,
) -> Result<(), NormalizeError> {
    for (_, value) in opt_strs(v, pointer)? {
        if let Ok(observable) = Observable::new(kind, &value, role) {
            alert.observe(observable);
        }
    }
    Ok(())
}

/// An endpoint as source and destination fields often hold one: an IP address when the
/// value is one, otherwise a host name.
pub fn address(raw: &str, role: Option<ObservableRole>) -> Result<Observable, ObservableError> {
    Observable::new(ObservableKind::Ip, raw, role)
        .or_else(|_| Observable::new(ObservableKind::Host, raw, role))
}

/// Adds every string at `pointer` as an `address`; a value that is neither an IP address
/// nor a host name is an error naming its field.
pub fn observe_address_at(
    alert: &mut NewAlert,
    v: &Value,
    pointer: &str,
    role: Option<ObservableRole>,
) -> Result<(), NormalizeError> {
    for (field, value) in opt_strs(v, pointer)? {
        let observable = address(&value, role).map_err(|_| {
            NormalizeError::invalid(
                &field,
                format!(
                    "{:?} is neither an IP address nor a host name",
                    value.chars().take(200).collect::<String>()
                ),
            )
        })?;
        alert.observe(observable);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_access_names_fields() {
        let v = json!({ "a": { "b": 5, "c": "x", "d": [1], "n": null } });
        assert_eq!(opt_str(&v, "/a/b").unwrap().as_deref(), Some("5"));
        assert_eq!(opt_str(&v, "/a/n").unwrap(), None);
        let err = opt_str(&v, "/a/d").unwrap_err();
        assert_eq!(err.field, "a.d");
        assert!(err.to_string().contains("a.d"), "{err}");
        assert_eq!(req_str(&v, "/a/zz").unwrap_err().field, "a.zz");
        assert_eq!(opt_i64(&v, "/a/b").unwrap(), Some(5));
        assert!(opt_i64(&v, "/a/c").is_err());
        assert_eq!(opt_array(&v, "/a/d").unwrap().len(), 1);
        assert!(opt_array(&v, "/a/c").is_err());
    }

    #[test]
    fn times_in_vendor_formats() {
        let want = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        for t in [
            "2026-11-25T10:00:00Z",
            "2026-11-25T11:00:00+01:00",
            "2026-11-25T10:00:00.000+0000",
            "2026-11-25 10:00:00",
            "1795600800",
            "1795600800000",
        ] {
            assert_eq!(parse_time(t), Some(want), "{t}");
        }
        assert_eq!(parse_time("yesterday"), None);
        assert!(opt_time(&json!({ "t": "nope" }), "/t").is_err());
        assert_eq!(
            opt_time(&json!({ "t": 1795600800 }), "/t").unwrap(),
            Some(want)
        );
    }

    #[test]
    fn multi_valued_fields() {
        let v = json!({ "one": "a", "many": ["b", "", null, 7], "bad": [["x"]], "n": null });
        assert_eq!(
            opt_strs(&v, "/one").unwrap(),
            vec![("/one".into(), "a".into())]
        );
        assert_eq!(
            opt_strs(&v, "/many").unwrap(),
            vec![
                ("/many/0".into(), "b".into()),
                ("/many/3".into(), "7".into())
            ]
        );
        assert!(opt_strs(&v, "/n").unwrap().is_empty());
        assert!(opt_strs(&v, "/absent").unwrap().is_empty());
        assert_eq!(opt_strs(&v, "/bad").unwrap_err().field, "bad.0");
    }

    #[test]
    fn observing_strictly_or_free_form() {
        use crate::alert::{AlertClass, Severity};
        let v = json!({ "ips": ["192.0.2.1", "nope"], "hosts": ["evil.example", "a b"], "addr": ["10.0.0.1", "ws-1.corp"] });
        let mut a = NewAlert::new(AlertClass::DetectionFinding, Severity::Low, "t", "v", "p");
        let err = observe_each_at(&mut a, &v, "/ips", ObservableKind::Ip, None).unwrap_err();
        assert_eq!(err.field, "ips.1");
        observe_free_form_at(&mut a, &v, "/hosts", ObservableKind::Domain, None).unwrap();
        observe_address_at(&mut a, &v, "/addr", Some(ObservableRole::Src)).unwrap();
        let got: Vec<_> = a
            .observables
            .iter()
            .map(|o| (o.kind, o.value.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (ObservableKind::Ip, "192.0.2.1"),
                (ObservableKind::Domain, "evil.example"),
                (ObservableKind::Ip, "10.0.0.1"),
                (ObservableKind::Host, "ws-1.corp"),
            ]
        );
        let bad = json!({ "addr": "not an address" });
        assert_eq!(
            observe_address_at(&mut a, &bad, "/addr", None)
                .unwrap_err()
                .field,
            "addr"
        );
    }
}
