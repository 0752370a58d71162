//! JSONPath queries (RFC 9535 syntax, evaluated with the `jsonpath-rust` crate), parsed
//! once and evaluated many times.
//!
//! Shared by the generic ingestion mapping and the playbook expression language, so that
//! both parse, evaluate and inspect queries the same way.

use jsonpath_rust::parser::errors::JsonPathError;
use jsonpath_rust::parser::model::{
    Comparable, Comparison, FilterAtom, FnArg, JpQuery, Segment, Selector, SingularQuery,
    SingularQuerySegment, Test, TestFunction,
};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::{js_path_process, QueryRef};
use serde_json::Value;

/// A parsed JSONPath with its text, for messages.
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    parsed: JpQuery,
}

impl Query {
    /// Parses `text` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Query, JsonPathError> {
        let text = text.trim();
        Ok(Query {
            text: text.to_string(),
            parsed: parse_json_path(text)?,
        })
    }

    /// The expression as written (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every node the query selects in `value`, with its normalized path.
    pub fn find<'a>(&self, value: &'a Value) -> Result<Vec<QueryRef<'a, Value>>, JsonPathError> {
        js_path_process(&self.parsed, value)
    }

    /// Whether the query is singular in the RFC 9535 sense: only member names and
    /// indexes, so it selects at most one node whatever the data.
    pub fn is_singular(&self) -> bool {
        self.parsed.segments.iter().all(|s| match s {
            Segment::Selector(sel) => matches!(sel, Selector::Name(_) | Selector::Index(_)),
            Segment::Selectors(sels) => {
                sels.len() == 1
                    && matches!(sels.first(), Some(Selector::Name(_) | Selector::Index(_)))
            }
            Segment::Descendant(_) => false,
        })
    }

    /// The leading member names of this query and of every absolute (`$`) query nested
    /// in its filters, in order of appearance: for each, the first and second segment's
    /// name when that segment is a single member name, else `None`.
    ///
    /// `$.steps.vt.output` gives `(Some("steps"), Some("vt"))`, `$..x` gives
    /// `(None, None)`; used to check what part of a document a query depends on.
    pub fn heads(&self) -> Vec<(Option<&str>, Option<&str>)> {
        let mut out = Vec::new();
        query_heads(&self.parsed, &mut out);
        out
    }
}

/// The member name a segment selects, when it selects exactly one by name.
fn segment_name(segment: Option<&Segment>) -> Option<&str> {
    match segment? {
        Segment::Selector(Selector::Name(n)) => Some(n),
        Segment::Selectors(sels) if sels.len() == 1 => match sels.first()? {
            Selector::Name(n) => Some(n),
            _ => None,
        },
        _ => None,
    }
}

fn query_heads<'q>(query: &'q JpQuery, out: &mut Vec<(Option<&'q str>, Option<&'q str>)>) {
    let mut segments = query.segments.iter();
    out.push((segment_name(segments.next()), segment_name(segments.next())));
    segments_heads(&query.segments, out);
}

/// Absolute queries nested in the filters of `segments` (the segments' own head is the
/// caller's business).
fn segments_heads<'q>(segments: &'q [Segment], out: &mut Vec<(Option<&'q str>, Option<&'q str>)>) {
    for segment in segments {
        segment_heads(segment, out);
    }
}

fn segment_heads<'q>(segment: &'q Segment, out: &mut Vec<(Option<&'q str>, Option<&'q str>)>) {
    match segment {
        Segment::Descendant(inner) => segment_heads(inner, out),
        Segment::Selector(sel) => selector_heads(sel, out),
        Segment::Selectors(sels) => sels.iter().for_each(|s| selector_heads(s, out)),
    }
}

fn selector_heads<'q>(selector: &'q Selector, out: &mut Vec<(Option<&'q str>, Option<&'q str>)>) {
    if let Selector::Filter(filter) = selector {
        filter_heads(filter, out);
    }
}

fn filter_heads<'q>(
    filter: &'q jsonpath_rust::parser::model::Filter,
    out: &mut Vec<(Option<&'q str>, Option<&'q str>)>,
) {
    use jsonpath_rust::parser::model::Filter;
    match filter {
        Filter::Or(items) | Filter::And(items) => items.iter().for_each(|f| filter_heads(f, out)),
        Filter::Atom(FilterAtom::Filter { expr, .. }) => filter_heads(expr, out),
        Filter::Atom(FilterAtom::Test { expr, .. }) => test_heads(expr, out),
        Filter::Atom(FilterAtom::Comparison(cmp)) => {
            let (Comparison::Eq(a, b)
            | Comparison::Ne(a, b)
            | Comparison::Gt(a, b)
            | Comparison::Gte(a, b)
            | Comparison::Lt(a, b)
            | Comparison::Lte(a, b)) = cmp.as_ref();
            comparable_heads(a, out);
            comparable_heads(b, out);
        }
    }
}

fn test_heads<'q>(test: &'q Test, out: &mut Vec<(Option<&'q str>, Option<&'q str>)>) {
    match test {
        Test::RelQuery(segments) => segments_heads(segments, out),
        Test::AbsQuery(query) => query_heads(query, out),
        Test::Function(f) => function_heads(f, out),
    }
}

fn comparable_heads<'q>(c: &'q Comparable, out: &mut Vec<(Option<&'q str>, Option<&'q str>)>) {
    match c {
        Comparable::Literal(_) | Comparable::SingularQuery(SingularQuery::Current(_)) => {}
        Comparable::Function(f) => function_heads(f, out),
        Comparable::SingularQuery(SingularQuery::Root(segments)) => {
            let name = |s: Option<&'q SingularQuerySegment>| match s {
                Some(SingularQuerySegment::Name(n)) => Some(n.as_str()),
                _ => None,
            };
            out.push((name(segments.first()), name(segments.get(1))));
        }
    }
}

fn function_heads<'q>(f: &'q TestFunction, out: &mut Vec<(Option<&'q str>, Option<&'q str>)>) {
    let args: Vec<&FnArg> = match f {
        TestFunction::Custom(_, args) => args.iter().collect(),
        TestFunction::Length(a) => vec![a.as_ref()],
        TestFunction::Value(a) | TestFunction::Count(a) => vec![a],
        TestFunction::Search(a, b) | TestFunction::Match(a, b) => vec![a, b],
    };
    for arg in args {
        match arg {
            FnArg::Literal(_) => {}
            FnArg::Test(t) => test_heads(t, out),
            FnArg::Filter(filter) => filter_heads(filter, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_find_and_shape() {
        let q = Query::parse(" $.a[*].b ").unwrap();
        assert_eq!(q.text(), "$.a[*].b");
        let doc = json!({ "a": [{ "b": 1 }, { "b": 2 }] });
        let vals: Vec<&Value> = q.find(&doc).unwrap().into_iter().map(|r| r.val).collect();
        assert_eq!(vals, [&json!(1), &json!(2)]);
        assert!(!q.is_singular());
        assert!(Query::parse("$.a['b'][0][-1]").unwrap().is_singular());
        assert!(Query::parse("$").unwrap().is_singular());
        assert!(!Query::parse("$..a").unwrap().is_singular());
        assert!(!Query::parse("$['a','b']").unwrap().is_singular());
        assert!(!Query::parse("$[0:2]").unwrap().is_singular());
        assert!(Query::parse("$[?(").is_err());
    }

    #[test]
    fn heads_include_nested_absolute_queries() {
        let q = Query::parse(
            "$.steps['vt'].output[?@.x == $.case.id && length($.inputs.l) > 1 || $..z]",
        )
        .unwrap();
        assert_eq!(
            q.heads(),
            [
                (Some("steps"), Some("vt")),
                (Some("case"), Some("id")),
                (Some("inputs"), Some("l")),
                (None, None),
            ]
        );
        assert_eq!(Query::parse("$").unwrap().heads(), [(None, None)]);
        assert_eq!(Query::parse("$[*].a").unwrap().heads(), [(None, Some("a"))]);
    }
}
