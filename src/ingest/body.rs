//! Splits an ingestion request body into events: one JSON object, a JSON array of them, or
//! NDJSON (one per line). Each event keeps its exact text, which is stored verbatim.

use serde_json::value::RawValue;
use serde_json::Value;

/// One event from a request body.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// The event's exact text in the body.
    pub text: String,
    pub value: Value,
}

/// Why a body could not be split into events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    /// Which event (0-based) or line was at fault, when known.
    pub index: Option<usize>,
    pub message: String,
}

/// Parses `body`; `max_events` bounds how many events one request may carry.
pub fn split(body: &[u8], max_events: usize) -> Result<Vec<RawEvent>, BodyError> {
    let text = std::str::from_utf8(body).map_err(|e| BodyError {
        index: None,
        message: format!("the body is not UTF-8: {e}"),
    })?;
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.is_empty() {
        return Err(BodyError {
            index: None,
            message: "the body is empty; send a JSON object, a JSON array or NDJSON".into(),
        });
    }
    let too_many = |n: usize| BodyError {
        index: None,
        message: format!("{n} events is over the limit of {max_events} per request"),
    };
    if trimmed.starts_with('[') {
        let items: Vec<Box<RawValue>> = serde_json::from_str(trimmed).map_err(|e| BodyError {
            index: None,
            message: format!("malformed JSON array: {e}"),
        })?;
        if items.len() > max_events {
            return Err(too_many(items.len()));
        }
        return items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let value = serde_json::from_str(raw.get()).map_err(|e| BodyError {
                    index: Some(i),
                    message: e.to_string(),
                })?;
                Ok(RawEvent {
                    text: raw.get().to_string(),
                    value,
                })
            })
            .collect();
    }
    // A single object, or NDJSON: try the whole body as one value first, since pretty-printed
    // single events span lines.
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return Ok(vec![RawEvent {
            text: trimmed.to_string(),
            value,
        }]);
    }
    let mut events = Vec::new();
    for (i, line) in trimmed
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        if events.len() == max_events {
            return Err(too_many(max_events + 1));
        }
        let value = serde_json::from_str(line.trim()).map_err(|e| BodyError {
            index: Some(events.len()),
            message: format!("line {}: malformed JSON: {e}", i + 1),
        })?;
        events.push(RawEvent {
            text: line.trim().to_string(),
            value,
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_array_and_ndjson() {
        let one = split(b"{\n  \"a\": 1\n}\n", 10).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].text, "{\n  \"a\": 1\n}");
        let arr = split(b"[{\"a\":1}, {\"a\" : 2}]", 10).unwrap();
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[1].text, "{\"a\" : 2}");
        let nd = split(b"{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}", 10).unwrap();
        assert_eq!(nd.len(), 3);
        assert_eq!(nd[2].value["a"], 3);
    }

    #[test]
    fn errors_say_where() {
        assert!(split(b"", 10).unwrap_err().message.contains("empty"));
        assert!(split(&[0xff, 0xfe], 10)
            .unwrap_err()
            .message
            .contains("UTF-8"));
        let bad = split(b"{\"a\":1}\n{\"a\":", 10).unwrap_err();
        assert_eq!(bad.index, Some(1));
        assert!(bad.message.contains("line 2"), "{}", bad.message);
        assert!(split(b"[1,2,3]", 2)
            .unwrap_err()
            .message
            .contains("limit of 2"));
        assert!(split(b"[{]", 2).unwrap_err().message.contains("malformed"));
    }
}
