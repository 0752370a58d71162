//! Form bodies read as name/value pairs, since the case forms repeat names (one `case`
//! per ticked box) and serde's form decoding cannot.

use crate::web::error::ApiError;

/// The fields of an `application/x-www-form-urlencoded` body, in order.
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Decodes `body`.
    pub fn parse(body: &[u8]) -> Fields {
        Fields(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of `name` as given (possibly empty).
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The CSRF token submitted with the form (empty when missing, which never matches).
    pub fn csrf(&self) -> &str {
        self.raw("csrf_token")
    }

    /// `name`, required, or a 400 naming it.
    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::bad_request(format!("`{name}` is required")))
    }
}

/// Case ids from a list such as `12, 15 17`, or a 400 naming the bad one.
pub fn case_ids<'a>(
    field: &str,
    values: impl Iterator<Item = &'a str>,
) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::new();
    for value in values {
        for part in value
            .split([',', ' '])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let id = part.trim_start_matches('#').parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("`{field}`: {part:?} is not a case number"))
            })?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_and_id_lists() {
        let f = Fields::parse(b"case=1&case=2&q=+a+b+&csrf_token=&x=");
        assert_eq!(f.all("case").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(f.get("q"), Some("a b"));
        assert_eq!(f.get("x"), None);
        assert_eq!(f.csrf(), "");
        assert!(f.required("y").is_err());
        assert_eq!(
            case_ids("c", ["3, #4 3", "5"].into_iter()).unwrap(),
            [3, 4, 5]
        );
        assert!(case_ids("c", ["3x"].into_iter()).is_err());
    }
}
