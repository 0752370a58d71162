//! Templates and conditions: the expression language of playbooks.
//!
//! Step inputs are *templates* and `if:` / `condition:` are *conditions*. Both read the
//! run context, a JSON object with these keys:
//!
//! | key       | contents                                                         |
//! |-----------|------------------------------------------------------------------|
//! | `case`    | the case the playbook runs for                                   |
//! | `alerts`  | the case's alerts (an array)                                     |
//! | `trigger` | what started the run                                             |
//! | `inputs`  | the playbook's inputs                                            |
//! | `steps`   | `steps.<id>.output` and `steps.<id>.status` of steps already run |
//! | `item`    | the current element of a `foreach`                              |
//! | `run`     | the run itself                                                   |
//! | `output`  | in a step's `outputs:` only: that step's own result               |
//!
//! Values are read with JSONPath (RFC 9535 syntax): `$.case.title`,
//! `$.alerts[*].observables[?@.type == 'url'].value`, `$.steps['vt'].output`. A path
//! must start with `$` and, when it names a top-level key, that key must be one of the
//! above, so a misspelt `$.csae.title` is refused when the playbook is loaded rather
//! than quietly rendering nothing. A path ends at the first space outside brackets;
//! names with characters other than letters, digits and `_` (`my-step`) need brackets:
//! `$.steps['my-step'].output`.
//!
//! **The value of a path.** A *singular* path (only `.name`, `['name']` and `[index]`
//! segments) gives the value it finds, or `null` when there is none. Any other path
//! (`*`, `..`, slices, filters, several selectors) always gives an array of everything
//! it finds, possibly empty, so its type does not depend on how many alerts a case
//! happens to have. Use `| first` for a single value.
//!
//! # Templates
//!
//! A template is a string with `${{ path | filter | filter ... }}` placeholders:
//!
//! ```text
//! "${{ $.case.title }}"                        the title itself (a string)
//! "${{ $.steps.vt.output.malicious }}"         a number stays a number
//! "${{ $.alerts[*].observables[?@.type == 'url'].value }}"    an array of URLs
//! "Case ${{ $.case.id }}: ${{ $.case.title | upper }}"        text
//! "URLs: ${{ $.alerts[*].observables[*].value | join(', ') }}"
//! "${{ $.inputs.owner | default('soc@example.com') | lower }}"
//! "Literal $${{ braces }}"                     renders  Literal ${{ braces }}
//! ```
//!
//! - A string that is exactly one placeholder, with nothing around it (not even
//!   spaces), renders to the JSON value itself: a number, boolean, array, object or
//!   `null`.
//! - Otherwise placeholders render as text inside the string: strings as they are,
//!   `null` as nothing, anything else as compact JSON (`[1,2]`).
//! - `$${{` is always a literal `${{`; nothing else is escaped (`}}` and `$` outside a
//!   placeholder are ordinary text).
//! - In a structure (step `with:` inputs), every string is a template; keys are not.
//!
//! Filters, applied left to right:
//!
//! | filter         | result                                                               |
//! |----------------|----------------------------------------------------------------------|
//! | `first`/`last` | first / last element of an array (`null` if empty); other values unchanged |
//! | `count`        | elements of an array, members of an object, 0 for `null`, else 1     |
//! | `join("sep")`  | a string: array elements as text (see above) separated by `sep`       |
//! | `default(lit)` | `lit` when the value is empty: `null`, `""`, `[]` or `{}`             |
//! | `lower`/`upper`/`trim` | the string changed; in an array, each string element; other values unchanged |
//! | `json`         | the value as compact JSON text                                        |
//! | `base64`/`base64url` | the string's UTF-8 bytes in base64 (padded) / base64url (unpadded, `-` and `_`); in an array, each string element; other values unchanged |
//!
//! # Conditions
//!
//! ```text
//! $.case.severity == 'high'
//! $.case.severity in ['high', 'critical'] && !$.case.closed
//! $.steps.vt.output.malicious > 3 or $.steps.vt.status == "failed"
//! $.alerts[*].observables[*].type contains 'url'
//! exists($.inputs.ticket) and not empty($.alerts)
//! $.case.title matches '(?i)phish'
//! ($.item.score >= 50 || $.item.tags contains 'vip') && $.run.dry_run == false
//! ```
//!
//! - `==` / `!=` compare JSON values, numbers by value (`1 == 1.0`).
//! - `<` `<=` `>` `>=` compare two numbers numerically or two strings by code point;
//!   any other pair (including `null`) is false.
//! - `a contains b`: `a` a string containing the string `b`, an array with an element
//!   equal to `b`, or an object with a key `b`; otherwise false. `b in a` is the same.
//! - `a matches 're'`: `a` is a string matching the regular expression (Rust `regex`
//!   syntax, unanchored; `(?i)` for case-insensitive). The pattern must be a string
//!   literal, compiled when the playbook is loaded; a non-string `a` is false.
//! - `exists($p)`: the path finds at least one value that is not `null`.
//!   `empty($p)`: the path's value is `null`, `""`, `[]` or `{}`.
//! - A lone operand is a test of truth: `null`, `false`, `0`, `""`, `[]`, `{}` (and a
//!   path finding nothing) are false, everything else is true.
//! - `!`/`not` binds looser than comparisons (`not $.a == 1` is `not ($.a == 1)`),
//!   then `&&`/`and`, then `||`/`or`; `&&` and `||` short-circuit. Keywords are
//!   lower-case.
//!
//! # Grammar
//!
//! Whitespace may appear between tokens (never inside a path outside brackets).
//!
//! ```text
//! template    = { text | "$${{" | placeholder } ;
//! placeholder = "${{" path { "|" filter } "}}" ;
//! filter      = "first" | "last" | "count" | "lower" | "upper" | "trim" | "json"
//!             | "base64" | "base64url" | "join" "(" string ")" | "default" "(" literal ")" ;
//!
//! condition   = and { ( "||" | "or" ) and } ;
//! and         = not { ( "&&" | "and" ) not } ;
//! not         = ( "!" | "not" ) not | primary ;
//! primary     = "(" condition ")"
//!             | ( "exists" | "empty" ) "(" path ")"
//!             | operand "matches" string
//!             | operand [ ( "==" | "!=" | "<" | "<=" | ">" | ">="
//!                         | "contains" | "in" ) operand ] ;
//! operand     = path | literal ;
//! literal     = number | string | "true" | "false" | "null"
//!             | "[" [ literal { "," literal } ] "]" ;
//! number      = a JSON number: 3, -1, 2.5, 1e3 ;
//! string      = "'" chars "'" | '"' chars '"' ;  (escapes: \\ \' \" \n \r \t)
//! path        = "$" { "." name | ".*" | ".." ( name | "*" | brackets ) | brackets } ;
//! name        = ( letter | "_" ) { letter | digit | "_" } ;  (letters include non-ASCII)
//! brackets    = "[" selector { "," selector } "]" ;
//!               (RFC 9535 selectors: 'name', 0, -1, 1:3, *, ?filter with @ and $)
//! ```
//!
//! # Limits and errors
//!
//! A condition or placeholder is at most 4 KiB ([`MAX_EXPR_LEN`]), a template string at
//! most 64 KiB ([`MAX_TEMPLATE_LEN`]), and parentheses, `not`s, lists, JSONPath
//! brackets and templated structures nest at most 64 deep ([`MAX_DEPTH`]), so parsing
//! and evaluating are bounded work. Every syntax, JSONPath and regular-expression error
//! is found when the playbook is loaded, with the 1-based character position and what
//! was expected, e.g.
//! `position 14: expected an operator such as == or contains, found 'x'`; errors in a
//! structure also name where the string is (`with.body.2: position 5: ...`).

use crate::jsonpath::Query;
use jsonpath_rust::parser::errors::JsonPathError;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The longest condition or placeholder accepted, in bytes.
pub const MAX_EXPR_LEN: usize = 4096;
/// The longest template string accepted, in bytes (message bodies can be long).
pub const MAX_TEMPLATE_LEN: usize = 64 * 1024;
/// The deepest nesting accepted: parentheses, `not`s, lists, JSONPath brackets, and
/// arrays and objects in a templated structure.
pub const MAX_DEPTH: usize = 64;
/// The top-level keys of the run context a path may name.
pub const ROOTS: [&str; 8] = [
    "case", "alerts", "trigger", "inputs", "steps", "item", "run", "output",
];
/// Compiled size limit for `matches` patterns, so one pattern cannot take much memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// An error in a template or condition, or while evaluating one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe(.location, *.position, .message))]
pub struct ExprError {
    /// Where in a templated structure the string is (`body.items.2`); empty otherwise.
    pub location: String,
    /// The 1-based character position in the expression; 0 when not about one place.
    pub position: usize,
    /// What was wrong, e.g. `expected ')', found end of input`.
    pub message: String,
}

fn describe(location: &str, position: usize, message: &str) -> String {
    let mut out = String::new();
    if !location.is_empty() {
        out.push_str(location);
        out.push_str(": ");
    }
    if position > 0 {
        out.push_str(&format!("position {position}: "));
    }
    out.push_str(message);
    out
}

impl ExprError {
    fn new(position: usize, message: impl Into<String>) -> ExprError {
        ExprError {
            location: String::new(),
            position,
            message: message.into(),
        }
    }

    /// Prefixes the location with `key`, as the error travels out of a structure.
    fn within(mut self, key: &str) -> ExprError {
        self.location = if self.location.is_empty() {
            key.to_string()
        } else {
            format!("{key}.{}", self.location)
        };
        self
    }
}

/// What part of the run context an expression reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// The top-level key (`case`, `steps`...); `None` when the path does not name one
    /// (`$`, `$..id`, `$[*]`).
    pub root: Option<String>,
    /// For `steps`, the step id named (`$.steps.vt.output` → `vt`); `None` when the
    /// path names none (`$.steps[*].status`) or the root is not `steps`.
    pub step: Option<String>,
}

/// Adds the references of `path` to `out`, keeping the first of each.
fn add_references(path: &Path, out: &mut Vec<Reference>) {
    for (root, second) in path.query.heads() {
        let reference = Reference {
            root: root.map(str::to_string),
            step: second.filter(|_| root == Some("steps")).map(str::to_string),
        };
        if !out.contains(&reference) {
            out.push(reference);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lexing

/// A position in the source being parsed. Offsets are in bytes and always on character
/// boundaries; positions in errors are converted to characters.
struct Cursor<'a> {
    src: &'a str,
    pos: usize,
    depth: usize,
    /// The top-level keys paths may name ([`ROOTS`] for playbooks).
    roots: &'static [&'static str],
}

fn is_name_first(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_name_char(c: char) -> bool {
    is_name_first(c) || c.is_ascii_digit()
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Cursor<'a> {
    fn new(src: &'a str, roots: &'static [&'static str]) -> Cursor<'a> {
        Cursor {
            src,
            pos: 0,
            depth: 0,
            roots,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }

    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    /// The keyword-like word at the cursor (ASCII letters, digits, `_`), if any.
    fn word(&self) -> Option<&'a str> {
        let rest = self.rest();
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            return None;
        }
        let end = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        rest.get(..end)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        if self.word() == Some(keyword) {
            self.pos += keyword.len();
            true
        } else {
            false
        }
    }

    /// The 1-based character position of byte offset `at`.
    fn position(&self, at: usize) -> usize {
        self.src.get(..at).map_or(0, |s| s.chars().count()) + 1
    }

    fn error_at(&self, at: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(self.position(at), message)
    }

    /// The next token, for "found ..." in messages.
    fn found(&self) -> String {
        match self.peek() {
            None => "end of input".into(),
            Some(c) if is_word_char(c) => {
                let rest = self.rest();
                let end = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
                let word: String = rest.get(..end).unwrap_or("").chars().take(24).collect();
                format!("'{word}'")
            }
            Some(c) => format!("'{c}'"),
        }
    }

    fn expected(&self, what: &str) -> ExprError {
        self.error_at(self.pos, format!("expected {what}, found {}", self.found()))
    }

    fn expect(&mut self, token: &str) -> Result<(), ExprError> {
        self.skip_ws();
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.expected(&format!("'{token}'")))
        }
    }

    /// Goes one level deeper into nesting, refusing more than [`MAX_DEPTH`].
    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                self.pos,
                format!("nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    // -----------------------------------------------------------------------------------
    // Paths

    /// A JSONPath starting at `$`. Finds where it ends (the first space, operator or
    /// `|` outside brackets), then has `jsonpath-rust` parse that text.
    fn path(&mut self) -> Result<Path, ExprError> {
        let start = self.pos;
        if !self.eat("$") {
            return Err(self.expected("a JSONPath starting with $"));
        }
        loop {
            if self.eat("..") {
                match self.peek() {
                    Some('[') => self.brackets()?,
                    Some('*') => {
                        self.bump();
                    }
                    Some(c) if is_name_first(c) => self.name(),
                    _ => return Err(self.expected("a member name, * or [ after '..'")),
                }
            } else if self.eat(".") {
                match self.peek() {
                    Some('*') => {
                        self.bump();
                    }
                    Some(c) if is_name_first(c) => self.name(),
                    _ => return Err(self.expected("a member name or * after '.'")),
                }
            } else if self.peek() == Some('[') {
                self.brackets()?;
            } else {
                break;
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        let position = self.position(start);
        let query = Query::parse(text).map_err(|e| {
            ExprError::new(
                position,
                format!("invalid JSONPath {text}: {}", jsonpath_reason(&e)),
            )
        })?;
        for (root, _) in query.heads() {
            if let Some(root) = root.filter(|r| !self.roots.contains(r)) {
                return Err(ExprError::new(
                    position,
                    format!(
                        "unknown context key '{root}' in {text}: expected one of {}",
                        self.roots.join(", ")
                    ),
                ));
            }
        }
        Ok(Path {
            singular: query.is_singular(),
            query,
            position,
        })
    }

    fn name(&mut self) {
        while self.peek().is_some_and(is_name_char) {
            self.bump();
        }
    }

    /// A bracketed selection, skipped over with its quotes and nested brackets.
    fn brackets(&mut self) -> Result<(), ExprError> {
        let mut open: Vec<(char, usize)> = Vec::new();
        let mut quote: Option<char> = None;
        loop {
            let at = self.pos;
            let Some(c) = self.bump() else {
                let (bracket, at) = open.last().copied().unwrap_or(('[', at));
                return Err(self.error_at(at, format!("'{bracket}' is never closed")));
            };
            if let Some(q) = quote {
                if c == '\\' {
                    self.bump();
                } else if c == q {
                    quote = None;
                }
                continue;
            }
            match c {
                '\'' | '"' => quote = Some(c),
                '[' | '(' => {
                    open.push((c, at));
                    if open.len() > MAX_DEPTH {
                        return Err(self.error_at(
                            at,
                            format!("JSONPath nested more than {MAX_DEPTH} levels deep"),
                        ));
                    }
                }
                ']' | ')' => {
                    let expected = match open.pop() {
                        Some(('[', _)) => ']',
                        Some(_) => ')',
                        None => return Err(self.error_at(at, format!("unexpected '{c}'"))),
                    };
                    if c != expected {
                        return Err(
                            self.error_at(at, format!("expected '{expected}', found '{c}'"))
                        );
                    }
                    if open.is_empty() {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Literals

    /// A literal, if one starts at the cursor.
    fn literal(&mut self) -> Result<Option<Value>, ExprError> {
        match self.peek() {
            Some('\'' | '"') => Ok(Some(Value::String(self.string()?))),
            Some('[') => self.list().map(Some),
            Some('-' | '0'..='9') => self.number().map(Some),
            _ => Ok(if self.eat_keyword("true") {
                Some(Value::Bool(true))
            } else if self.eat_keyword("false") {
                Some(Value::Bool(false))
            } else if self.eat_keyword("null") {
                Some(Value::Null)
            } else {
                None
            }),
        }
    }

    fn string(&mut self) -> Result<String, ExprError> {
        let open = self.pos;
        let Some(quote) = self.peek().filter(|c| *c == '\'' || *c == '"') else {
            return Err(self.expected("a quoted string"));
        };
        self.bump();
        let mut out = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(self.error_at(open, "string is never closed")),
                Some(c) if c == quote => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('\\') => out.push('\\'),
                    Some('\'') => out.push('\''),
                    Some('"') => out.push('"'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    _ => {
                        return Err(self.error_at(
                            at,
                            "unknown escape: expected one of \\\\ \\' \\\" \\n \\r \\t",
                        ))
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        self.pos - start
    }

    /// A number in JSON syntax.
    fn number(&mut self) -> Result<Value, ExprError> {
        let start = self.pos;
        self.eat("-");
        if !self.eat("0") && self.digits() == 0 {
            return Err(self.expected("a digit"));
        }
        if self.eat(".") && self.digits() == 0 {
            return Err(self.expected("a digit after '.'"));
        }
        if self.eat("e") || self.eat("E") {
            let _ = self.eat("+") || self.eat("-");
            if self.digits() == 0 {
                return Err(self.expected("a digit in the exponent"));
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        text.parse::<Number>()
            .map(Value::Number)
            .map_err(|_| self.error_at(start, format!("number {text} is out of range")))
    }

    fn list(&mut self) -> Result<Value, ExprError> {
        self.enter()?;
        self.expect("[")?;
        let mut items = Vec::new();
        self.skip_ws();
        if !self.eat("]") {
            loop {
                self.skip_ws();
                match self.literal()? {
                    Some(v) => items.push(v),
                    None => return Err(self.expected("a literal")),
                }
                self.skip_ws();
                if self.eat("]") {
                    break;
                }
                if !self.eat(",") {
                    return Err(self.expected("',' or ']'"));
                }
            }
        }
        self.leave();
        Ok(Value::Array(items))
    }
}

/// A short reason from a `jsonpath-rust` error (its parser's own message spans lines).
fn jsonpath_reason(e: &JsonPathError) -> String {
    match e {
        JsonPathError::PestError(p) => p.variant.message().into_owned(),
        other => other.to_string(),
    }
}

/// A JSONPath within an expression, with where it is for run-time errors.
#[derive(Debug, Clone)]
struct Path {
    query: Query,
    singular: bool,
    position: usize,
}

impl Path {
    /// Every node found.
    fn find<'v>(&self, ctx: &'v Value) -> Result<Vec<&'v Value>, ExprError> {
        self.query
            .find(ctx)
            .map(|found| found.into_iter().map(|r| r.val).collect())
            .map_err(|e| {
                ExprError::new(
                    self.position,
                    format!("could not evaluate {}: {e}", self.query.text()),
                )
            })
    }

    /// The path's value (see the module documentation).
    fn eval(&self, ctx: &Value) -> Result<Value, ExprError> {
        let found = self.find(ctx)?;
        Ok(if self.singular {
            found.first().map_or(Value::Null, |v| (*v).clone())
        } else {
            Value::Array(found.into_iter().cloned().collect())
        })
    }
}

// ---------------------------------------------------------------------------------------
// Values

/// Truth of a value: `null`, `false`, `0`, `""`, `[]` and `{}` are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Whether a value counts as empty for `empty()` and `default`.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// JSON equality, with numbers equal by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Ordering of two numbers or two strings; `None` for anything else.
fn order(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn contains(haystack: &Value, needle: &Value) -> bool {
    match (haystack, needle) {
        (Value::String(h), Value::String(n)) => h.contains(n.as_str()),
        (Value::Array(items), n) => items.iter().any(|i| json_eq(i, n)),
        (Value::Object(members), Value::String(key)) => members.contains_key(key),
        _ => false,
    }
}

/// A value as text inside a longer string: strings as they are, `null` as nothing,
/// anything else as compact JSON.
fn push_text(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Null => {}
        other => out.push_str(&other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------
// Templates

/// A filter after `|` in a placeholder.
#[derive(Debug, Clone)]
enum Filter {
    First,
    Last,
    Count,
    Join(String),
    Default(Value),
    Lower,
    Upper,
    Trim,
    Json,
    Base64,
    Base64Url,
}

const FILTERS: &str =
    "first, last, count, join, default, lower, upper, trim, json, base64, base64url";

impl Filter {
    fn parse(c: &mut Cursor<'_>) -> Result<Filter, ExprError> {
        c.skip_ws();
        let start = c.pos;
        let Some(name) = c.word() else {
            return Err(c.expected(&format!("a filter name ({FILTERS})")));
        };
        c.pos += name.len();
        Ok(match name {
            "first" => Filter::First,
            "last" => Filter::Last,
            "count" => Filter::Count,
            "lower" => Filter::Lower,
            "upper" => Filter::Upper,
            "trim" => Filter::Trim,
            "json" => Filter::Json,
            "base64" => Filter::Base64,
            "base64url" => Filter::Base64Url,
            "join" => {
                c.expect("(")?;
                c.skip_ws();
                let sep = c.string()?;
                c.expect(")")?;
                Filter::Join(sep)
            }
            "default" => {
                c.expect("(")?;
                c.skip_ws();
                let Some(v) = c.literal()? else {
                    return Err(c.expected("a literal"));
                };
                c.expect(")")?;
                Filter::Default(v)
            }
            _ => {
                return Err(c.error_at(
                    start,
                    format!("unknown filter '{name}': expected one of {FILTERS}"),
                ))
            }
        })
    }

    fn apply(&self, v: Value) -> Value {
        fn each_string(v: Value, f: fn(&str) -> String) -> Value {
            match v {
                Value::String(s) => Value::String(f(&s)),
                Value::Array(items) => Value::Array(
                    items
                        .into_iter()
                        .map(|i| match i {
                            Value::String(s) => Value::String(f(&s)),
                            other => other,
                        })
                        .collect(),
                ),
                other => other,
            }
        }
        match self {
            Filter::First => match v {
                Value::Array(items) => items.into_iter().next().unwrap_or(Value::Null),
                other => other,
            },
            Filter::Last => match v {
                Value::Array(items) => items.into_iter().next_back().unwrap_or(Value::Null),
                other => other,
            },
            Filter::Count => Value::from(match &v {
                Value::Array(items) => items.len(),
                Value::Object(members) => members.len(),
                Value::Null => 0,
                _ => 1,
            }),
            Filter::Join(sep) => {
                let mut out = String::new();
                match &v {
                    Value::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            if i > 0 {
                                out.push_str(sep);
                            }
                            push_text(&mut out, item);
                        }
                    }
                    other => push_text(&mut out, other),
                }
                Value::String(out)
            }
            Filter::Default(d) => {
                if is_empty(&v) {
                    d.clone()
                } else {
                    v
                }
            }
            Filter::Lower => each_string(v, str::to_lowercase),
            Filter::Upper => each_string(v, str::to_uppercase),
            Filter::Trim => each_string(v, |s| s.trim().to_string()),
            Filter::Json => Value::String(v.to_string()),
            Filter::Base64 => each_string(v, |s| {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(s)
            }),
            Filter::Base64Url => each_string(v, |s| {
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
            }),
        }
    }
}

/// A `${{ ... }}` placeholder.
#[derive(Debug, Clone)]
struct Placeholder {
    path: Path,
    filters: Vec<Filter>,
}

impl Placeholder {
    /// Parses after the opening `${{` (which starts at byte `open`) up to and
    /// including `}}`.
    fn parse(c: &mut Cursor<'_>, open: usize) -> Result<Placeholder, ExprError> {
        c.skip_ws();
        let path = c.path()?;
        let mut filters = Vec::new();
        loop {
            c.skip_ws();
            if c.eat("}}") {
                break;
            }
            if c.at_end() {
                return Err(c.error_at(open, "'${{' is never closed with '}}'"));
            }
            if !c.eat("|") {
                return Err(c.expected("'|' or '}}'"));
            }
            filters.push(Filter::parse(c)?);
        }
        if c.pos - open > MAX_EXPR_LEN {
            return Err(c.error_at(
                open,
                format!("placeholder longer than {MAX_EXPR_LEN} bytes"),
            ));
        }
        Ok(Placeholder { path, filters })
    }

    fn eval(&self, ctx: &Value) -> Result<Value, ExprError> {
        let mut v = self.path.eval(ctx)?;
        for f in &self.filters {
            v = f.apply(v);
        }
        Ok(v)
    }
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Placeholder(Placeholder),
}

/// Parses a step's `foreach`: a bare JSONPath (`$.alerts[*].observables`), or a template
/// whose value is the list (`${{ $.steps.a.output | first }}`).
pub fn parse_foreach(source: &str) -> Result<Template, ExprError> {
    if source.contains("${{") {
        Template::parse(source)
    } else {
        let trimmed = source.trim();
        Template::parse(&format!("${{{{ {trimmed} }}}}")).map_err(|mut e| {
            // Positions count from the path as written, not from the added `${{ `.
            e.position = e.position.saturating_sub(4);
            e
        })
    }
}

/// A parsed template string (see the module documentation).
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template, finding every syntax and JSONPath error.
    pub fn parse(source: &str) -> Result<Template, ExprError> {
        Template::parse_with_roots(source, &ROOTS)
    }

    /// Like [`Template::parse`] for a context other than a playbook run's, whose paths
    /// may name only `roots` (an integration's action sees `inputs`, `settings`...).
    pub fn parse_with_roots(
        source: &str,
        roots: &'static [&'static str],
    ) -> Result<Template, ExprError> {
        if source.len() > MAX_TEMPLATE_LEN {
            return Err(ExprError::new(
                0,
                format!(
                    "template is {} bytes, longer than the {MAX_TEMPLATE_LEN} allowed",
                    source.len()
                ),
            ));
        }
        let mut c = Cursor::new(source, roots);
        let mut parts = Vec::new();
        let mut text = String::new();
        while let Some(ch) = c.peek() {
            if c.eat("$${{") {
                text.push_str("${{");
            } else if c.rest().starts_with("${{") {
                let open = c.pos;
                c.pos += 3;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Placeholder(Placeholder::parse(&mut c, open)?));
            } else {
                text.push(ch);
                c.bump();
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template has no placeholders, so renders to a fixed string.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// Renders against the run context: the value itself for a lone placeholder, a
    /// string otherwise.
    pub fn render(&self, ctx: &Value) -> Result<Value, ExprError> {
        if let [Part::Placeholder(p)] = self.parts.as_slice() {
            return p.eval(ctx);
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder(p) => push_text(&mut out, &p.eval(ctx)?),
            }
        }
        Ok(Value::String(out))
    }

    /// The parts of the run context the template reads, each once, in order.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        self.add_references(&mut out);
        out
    }

    fn add_references(&self, out: &mut Vec<Reference>) {
        for part in &self.parts {
            if let Part::Placeholder(p) = part {
                add_references(&p.path, out);
            }
        }
    }
}

/// A JSON structure whose strings are templates, parsed once to render many times.
#[derive(Debug, Clone)]
pub enum TemplateValue {
    /// A value without placeholders, rendered as it is.
    Literal(Value),
    /// A string with placeholders (or `$${{` escapes).
    Template(Template),
    /// An array with at least one placeholder inside.
    Array(Vec<TemplateValue>),
    /// An object with at least one placeholder inside; keys are not templates.
    Object(Vec<(String, TemplateValue)>),
}

/// Parses every string inside `v` as a template; errors name where (`body.items.2`).
pub fn parse_value(v: &Value) -> Result<TemplateValue, ExprError> {
    parse_value_at(v, 0, &ROOTS)
}

/// Like [`parse_value`] with paths that may name only `roots`.
pub fn parse_value_with_roots(
    v: &Value,
    roots: &'static [&'static str],
) -> Result<TemplateValue, ExprError> {
    parse_value_at(v, 0, roots)
}

fn parse_value_at(
    v: &Value,
    depth: usize,
    roots: &'static [&'static str],
) -> Result<TemplateValue, ExprError> {
    if depth > MAX_DEPTH {
        return Err(ExprError::new(
            0,
            format!("nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    Ok(match v {
        Value::String(s) => {
            let t = Template::parse_with_roots(s, roots)?;
            if t.is_literal() && !s.contains("$${{") {
                // Kept as a template when escaped, so `to_value` gives back the source.
                TemplateValue::Literal(v.clone())
            } else {
                TemplateValue::Template(t)
            }
        }
        Value::Array(items) => {
            let parsed = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    parse_value_at(item, depth + 1, roots).map_err(|e| e.within(&i.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if parsed
                .iter()
                .all(|p| matches!(p, TemplateValue::Literal(_)))
            {
                TemplateValue::Literal(Value::Array(
                    parsed
                        .into_iter()
                        .map(TemplateValue::into_literal)
                        .collect(),
                ))
            } else {
                TemplateValue::Array(parsed)
            }
        }
        Value::Object(members) => {
            let parsed = members
                .iter()
                .map(|(k, item)| {
                    parse_value_at(item, depth + 1, roots)
                        .map(|p| (k.clone(), p))
                        .map_err(|e| e.within(k))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if parsed
                .iter()
                .all(|(_, p)| matches!(p, TemplateValue::Literal(_)))
            {
                TemplateValue::Literal(Value::Object(
                    parsed
                        .into_iter()
                        .map(|(k, p)| (k, p.into_literal()))
                        .collect(),
                ))
            } else {
                TemplateValue::Object(parsed)
            }
        }
        other => TemplateValue::Literal(other.clone()),
    })
}

/// Renders every string inside `v` as a template against `ctx` (parses each time; parse
/// once with [`parse_value`] where the same structure is rendered repeatedly).
pub fn render_value(v: &Value, ctx: &Value) -> Result<Value, ExprError> {
    parse_value(v)?.render(ctx)
}

impl TemplateValue {
    fn into_literal(self) -> Value {
        match self {
            TemplateValue::Literal(v) => v,
            // Only called once every part is known to be a literal.
            other => other.to_value(),
        }
    }

    /// Renders against the run context; errors name where (`body.items.2`).
    pub fn render(&self, ctx: &Value) -> Result<Value, ExprError> {
        Ok(match self {
            TemplateValue::Literal(v) => v.clone(),
            TemplateValue::Template(t) => t.render(ctx)?,
            TemplateValue::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| item.render(ctx).map_err(|e| e.within(&i.to_string())))
                    .collect::<Result<_, _>>()?,
            ),
            TemplateValue::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, item)| {
                        item.render(ctx)
                            .map(|v| (k.clone(), v))
                            .map_err(|e| e.within(k))
                    })
                    .collect::<Result<Map<_, _>, _>>()?,
            ),
        })
    }

    /// The parts of the run context the structure reads, each once, in order.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        self.add_references(&mut out);
        out
    }

    fn add_references(&self, out: &mut Vec<Reference>) {
        match self {
            TemplateValue::Literal(_) => {}
            TemplateValue::Template(t) => t.add_references(out),
            TemplateValue::Array(items) => items.iter().for_each(|i| i.add_references(out)),
            TemplateValue::Object(members) => {
                members.iter().for_each(|(_, i)| i.add_references(out))
            }
        }
    }

    /// The structure as written (escapes in literal strings already resolved).
    pub fn to_value(&self) -> Value {
        match self {
            TemplateValue::Literal(v) => v.clone(),
            TemplateValue::Template(t) => Value::String(t.source.clone()),
            TemplateValue::Array(items) => {
                Value::Array(items.iter().map(TemplateValue::to_value).collect())
            }
            TemplateValue::Object(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Conditions

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    In,
}

#[derive(Debug, Clone)]
enum Operand {
    Path(Path),
    Literal(Value),
}

impl Operand {
    fn eval(&self, ctx: &Value) -> Result<Value, ExprError> {
        match self {
            Operand::Path(p) => p.eval(ctx),
            Operand::Literal(v) => Ok(v.clone()),
        }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Compare(Operand, Op, Operand),
    Matches(Operand, Regex),
    Exists(Path),
    Empty(Path),
    Truthy(Operand),
}

impl Node {
    fn eval(&self, ctx: &Value) -> Result<bool, ExprError> {
        Ok(match self {
            Node::Or(items) => {
                for item in items {
                    if item.eval(ctx)? {
                        return Ok(true);
                    }
                }
                false
            }
            Node::And(items) => {
                for item in items {
                    if !item.eval(ctx)? {
                        return Ok(false);
                    }
                }
                true
            }
            Node::Not(inner) => !inner.eval(ctx)?,
            Node::Compare(a, op, b) => {
                let (a, b) = (a.eval(ctx)?, b.eval(ctx)?);
                match op {
                    Op::Eq => json_eq(&a, &b),
                    Op::Ne => !json_eq(&a, &b),
                    Op::Lt => order(&a, &b) == Some(Ordering::Less),
                    Op::Le => matches!(order(&a, &b), Some(Ordering::Less | Ordering::Equal)),
                    Op::Gt => order(&a, &b) == Some(Ordering::Greater),
                    Op::Ge => {
                        matches!(order(&a, &b), Some(Ordering::Greater | Ordering::Equal))
                    }
                    Op::Contains => contains(&a, &b),
                    Op::In => contains(&b, &a),
                }
            }
            Node::Matches(a, re) => match a.eval(ctx)? {
                Value::String(s) => re.is_match(&s),
                _ => false,
            },
            Node::Exists(p) => p.find(ctx)?.iter().any(|v| !v.is_null()),
            Node::Empty(p) => is_empty(&p.eval(ctx)?),
            Node::Truthy(a) => truthy(&a.eval(ctx)?),
        })
    }

    fn add_references(&self, out: &mut Vec<Reference>) {
        let operand = |o: &Operand, out: &mut Vec<Reference>| {
            if let Operand::Path(p) = o {
                add_references(p, out);
            }
        };
        match self {
            Node::Or(items) | Node::And(items) => items.iter().for_each(|i| i.add_references(out)),
            Node::Not(inner) => inner.add_references(out),
            Node::Compare(a, _, b) => {
                operand(a, out);
                operand(b, out);
            }
            Node::Matches(a, _) | Node::Truthy(a) => operand(a, out),
            Node::Exists(p) | Node::Empty(p) => add_references(p, out),
        }
    }
}

/// What may follow a complete operand without an operator.
fn ends_operand(c: &Cursor<'_>) -> bool {
    let rest = c.rest();
    rest.is_empty()
        || rest.starts_with(')')
        || rest.starts_with("&&")
        || rest.starts_with("||")
        || matches!(c.word(), Some("and" | "or"))
}

impl Cursor<'_> {
    fn or(&mut self) -> Result<Node, ExprError> {
        let first = self.and()?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.eat("||") || self.eat_keyword("or") {
                items.push(self.and()?);
            } else {
                break;
            }
        }
        if items.is_empty() {
            return Ok(first);
        }
        items.insert(0, first);
        Ok(Node::Or(items))
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let first = self.not()?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.eat("&&") || self.eat_keyword("and") {
                items.push(self.not()?);
            } else {
                break;
            }
        }
        if items.is_empty() {
            return Ok(first);
        }
        items.insert(0, first);
        Ok(Node::And(items))
    }

    fn not(&mut self) -> Result<Node, ExprError> {
        self.skip_ws();
        if (self.peek() == Some('!') && !self.rest().starts_with("!="))
            || self.word() == Some("not")
        {
            if !self.eat("!") {
                self.eat_keyword("not");
            }
            self.enter()?;
            let inner = self.not()?;
            self.leave();
            return Ok(Node::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        self.skip_ws();
        if self.eat("(") {
            self.enter()?;
            let inner = self.or()?;
            self.skip_ws();
            if !self.eat(")") {
                return Err(self.expected("')', && or ||"));
            }
            self.leave();
            return Ok(inner);
        }
        for (name, make) in [
            ("exists", Node::Exists as fn(Path) -> Node),
            ("empty", Node::Empty),
        ] {
            if self.eat_keyword(name) {
                self.expect("(")?;
                self.skip_ws();
                let path = self.path()?;
                self.expect(")")?;
                return Ok(make(path));
            }
        }
        let left = self.operand()?;
        self.skip_ws();
        let op = if self.eat("==") {
            Op::Eq
        } else if self.eat("!=") {
            Op::Ne
        } else if self.eat("<=") {
            Op::Le
        } else if self.eat(">=") {
            Op::Ge
        } else if self.eat("<") {
            Op::Lt
        } else if self.eat(">") {
            Op::Gt
        } else if self.eat_keyword("contains") {
            Op::Contains
        } else if self.eat_keyword("in") {
            Op::In
        } else if self.eat_keyword("matches") {
            self.skip_ws();
            let start = self.pos;
            if !matches!(self.peek(), Some('\'' | '"')) {
                return Err(self.expected("a quoted regular expression after matches"));
            }
            let pattern = self.string()?;
            let re = RegexBuilder::new(&pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| {
                    let reason = e.to_string();
                    let reason = reason.lines().last().unwrap_or("").trim();
                    let reason = reason.trim_start_matches("error: ");
                    self.error_at(start, format!("invalid regular expression: {reason}"))
                })?;
            return Ok(Node::Matches(left, re));
        } else if ends_operand(self) {
            return Ok(Node::Truthy(left));
        } else {
            return Err(self.expected("an operator such as == or contains"));
        };
        let right = self.operand()?;
        Ok(Node::Compare(left, op, right))
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        self.skip_ws();
        if self.peek() == Some('$') {
            return self.path().map(Operand::Path);
        }
        match self.literal()? {
            Some(v) => Ok(Operand::Literal(v)),
            None => {
                Err(self.expected("a JSONPath ($...), a literal, exists(...), empty(...), ! or ("))
            }
        }
    }
}

/// A parsed condition (see the module documentation).
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    root: Node,
}

impl Condition {
    /// Parses a condition, finding every syntax, JSONPath and regex error.
    pub fn parse(source: &str) -> Result<Condition, ExprError> {
        Condition::parse_with_roots(source, &ROOTS)
    }

    /// Like [`Condition::parse`] with paths that may name only `roots`.
    pub fn parse_with_roots(
        source: &str,
        roots: &'static [&'static str],
    ) -> Result<Condition, ExprError> {
        if source.len() > MAX_EXPR_LEN {
            return Err(ExprError::new(
                0,
                format!(
                    "condition is {} bytes, longer than the {MAX_EXPR_LEN} allowed",
                    source.len()
                ),
            ));
        }
        let mut c = Cursor::new(source, roots);
        c.skip_ws();
        if c.at_end() {
            return Err(c.expected("a condition"));
        }
        let root = c.or()?;
        c.skip_ws();
        if !c.at_end() {
            return Err(c.expected(if c.peek() == Some(')') {
                "&&, || or the end (this ')' has no '(')"
            } else {
                "&&, || or the end"
            }));
        }
        Ok(Condition {
            source: source.to_string(),
            root,
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against the run context.
    pub fn eval(&self, ctx: &Value) -> Result<bool, ExprError> {
        self.root.eval(ctx)
    }

    /// The parts of the run context the condition reads, each once, in order.
    pub fn references(&self) -> Vec<Reference> {
        let mut out = Vec::new();
        self.root.add_references(&mut out);
        out
    }
}

// ---------------------------------------------------------------------------------------
// Conversions, so playbook structures can hold parsed expressions directly.

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        // The parsed form follows from the source.
        self.source == other.source
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl PartialEq for TemplateValue {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

impl FromStr for Template {
    type Err = ExprError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

impl FromStr for Condition {
    type Err = ExprError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::parse(s)
    }
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl Serialize for TemplateValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Condition::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for TemplateValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        parse_value(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({
            "case": {
                "id": 42, "title": "Phishing from Evil Corp", "severity": "high",
                "closed": false, "tags": ["vip", "mail"], "score": 7.5, "assignee": null,
                "note": "", "labels": {}, "big": 18446744073709551615u64,
                "nested": { "a": { "b": { "c": [1, { "d": "deep" }] } } }
            },
            "alerts": [
                { "id": "a1", "observables": [
                    { "type": "url", "value": "http://x.test/1" },
                    { "type": "ip", "value": "10.0.0.1" }
                ]},
                { "id": "a2", "observables": [{ "type": "url", "value": "http://y.test/2" }] }
            ],
            "trigger": { "kind": "case_created", "alert_id": "a2" },
            "inputs": { "owner": "  SOC@Example.com ", "limit": 3, "names": ["Ann", null, 2] },
            "steps": {
                "vt": { "output": { "malicious": 5, "ratio": 0.25 }, "status": "succeeded" },
                "my-step": { "output": "x", "status": "failed" }
            },
            "item": { "score": 60, "tags": ["vip"] },
            "run": { "dry_run": false, "id": "r1" }
        })
    }

    fn render(t: &str) -> Value {
        Template::parse(t)
            .unwrap_or_else(|e| panic!("{t}: {e}"))
            .render(&ctx())
            .unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    fn eval(c: &str) -> bool {
        Condition::parse(c)
            .unwrap_or_else(|e| panic!("{c}: {e}"))
            .eval(&ctx())
            .unwrap_or_else(|e| panic!("{c}: {e}"))
    }

    fn template_err(t: &str) -> String {
        Template::parse(t).map(|_| ()).unwrap_err().to_string()
    }

    fn condition_err(c: &str) -> String {
        Condition::parse(c).map(|_| ()).unwrap_err().to_string()
    }

    fn r(root: Option<&str>, step: Option<&str>) -> Reference {
        Reference {
            root: root.map(String::from),
            step: step.map(String::from),
        }
    }

    // --- templates ---------------------------------------------------------------------

    #[test]
    fn a_lone_placeholder_keeps_its_type() {
        assert_eq!(render("${{ $.case.id }}"), json!(42));
        assert_eq!(render("${{$.case.id}}"), json!(42));
        assert_eq!(render("${{ $.case.score }}"), json!(7.5));
        assert_eq!(render("${{ $.case.closed }}"), json!(false));
        assert_eq!(render("${{ $.case.tags }}"), json!(["vip", "mail"]));
        assert_eq!(render("${{ $.steps.vt.output }}")["malicious"], json!(5));
        assert_eq!(render("${{ $.case.assignee }}"), Value::Null);
        assert_eq!(render("${{ $.case.missing }}"), Value::Null);
        assert_eq!(render("${{ $.case.missing.deeper[3] }}"), Value::Null);
        assert_eq!(render("${{ $.case.big }}"), json!(18446744073709551615u64));
        assert_eq!(render("${{ $ }}"), ctx());
        // Anything around the placeholder, even a space, makes it text.
        assert_eq!(render(" ${{ $.case.id }}"), json!(" 42"));
        assert_eq!(render("${{ $.case.id }}${{ $.case.id }}"), json!("4242"));
    }

    #[test]
    fn non_singular_paths_always_give_arrays() {
        assert_eq!(render("${{ $.alerts[*].id }}"), json!(["a1", "a2"]));
        assert_eq!(render("${{ $.alerts[?@.id == 'a2'].id }}"), json!(["a2"]));
        assert_eq!(render("${{ $.alerts[?@.id == 'zz'].id }}"), json!([]));
        assert_eq!(
            render("${{ $.alerts[*].observables[?@.type == 'url'].value }}"),
            json!(["http://x.test/1", "http://y.test/2"])
        );
        assert_eq!(render("${{ $..d }}"), json!(["deep"]));
        assert_eq!(render("${{ $.alerts[0:1].id }}"), json!(["a1"]));
        assert_eq!(
            render("${{ $.case['id','severity'] }}"),
            json!([42, "high"])
        );
        assert_eq!(
            render("${{ $.alerts[?@.id == $.trigger.alert_id].id | first }}"),
            json!("a2")
        );
    }

    #[test]
    fn deep_paths_and_bracket_names() {
        assert_eq!(render("${{ $.case.nested.a.b.c[1].d }}"), json!("deep"));
        assert_eq!(
            render(r#"${{ $.case.nested['a']["b"].c[-1].d }}"#),
            json!("deep")
        );
        assert_eq!(render("${{ $.steps['my-step'].status }}"), json!("failed"));
        assert_eq!(
            render("${{ $['case']['title'] }}"),
            json!("Phishing from Evil Corp")
        );
        // `}}` and `|` inside brackets belong to the path.
        let c = json!({ "case": { "a}}b": 1, "c|d": 2 } });
        let t = Template::parse("${{ $.case['a}}b'] }}/${{ $.case['c|d'] }}").unwrap();
        assert_eq!(t.render(&c).unwrap(), json!("1/2"));
        // Deep contexts.
        let mut deep = json!("bottom");
        let mut path = String::from("$.case");
        for i in 0..60 {
            deep = json!({ format!("k{i}"): deep });
        }
        for i in (0..60).rev() {
            path.push_str(&format!(".k{i}"));
        }
        let c = json!({ "case": deep });
        let t = Template::parse(&format!("${{{{ {path} }}}}")).unwrap();
        assert_eq!(t.render(&c).unwrap(), json!("bottom"));
    }

    #[test]
    fn placeholders_in_text() {
        assert_eq!(
            render("Case ${{ $.case.id }}: ${{ $.case.title }}"),
            json!("Case 42: Phishing from Evil Corp")
        );
        assert_eq!(render("[${{ $.case.assignee }}]"), json!("[]"));
        assert_eq!(render("[${{ $.case.nothing }}]"), json!("[]"));
        assert_eq!(
            render("tags=${{ $.case.tags }}"),
            json!(r#"tags=["vip","mail"]"#)
        );
        assert_eq!(
            render("o=${{ $.steps.vt.output }}"),
            json!(r#"o={"malicious":5,"ratio":0.25}"#)
        );
        assert_eq!(render("${{ $.case.closed }}!"), json!("false!"));
        assert_eq!(render("${{ $.case.score }} "), json!("7.5 "));
        assert_eq!(render("no placeholders"), json!("no placeholders"));
        assert_eq!(render(""), json!(""));
        assert_eq!(
            render("héllo ${{ $.run.id }} wörld"),
            json!("héllo r1 wörld")
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(render("$${{ x }}"), json!("${{ x }}"));
        assert_eq!(
            render("a $${{ $.case.id }} b ${{ $.case.id }}"),
            json!("a ${{ $.case.id }} b 42")
        );
        assert_eq!(render("$$${{ $.case.id }}"), json!("$${{ $.case.id }}"));
        assert_eq!(
            render("cost: $5 }} {{ $ ${ {{"),
            json!("cost: $5 }} {{ $ ${ {{")
        );
        assert_eq!(render("$${{"), json!("${{"));
        assert!(Template::parse("$${{").unwrap().is_literal());
        assert!(!Template::parse("${{ $ }}").unwrap().is_literal());
    }

    #[test]
    fn base64_filters_encode_utf8_text() {
        let ctx = json!({"inputs": {
            "url": "http://x.test/a?b=1",
            "odd": "ü~?>",
            "list": ["ab", 1, null],
            "n": 5,
        }});
        let r = |t: &str| Template::parse(t).unwrap().render(&ctx).unwrap();
        // VirusTotal's URL identifier: unpadded base64url.
        assert_eq!(
            r("${{ $.inputs.url | base64url }}"),
            json!("aHR0cDovL3gudGVzdC9hP2I9MQ")
        );
        assert_eq!(
            r("${{ $.inputs.url | base64 }}"),
            json!("aHR0cDovL3gudGVzdC9hP2I9MQ==")
        );
        // Characters that differ between the alphabets.
        assert_eq!(r("${{ $.inputs.odd | base64 }}"), json!("w7x+Pz4="));
        assert_eq!(r("${{ $.inputs.odd | base64url }}"), json!("w7x-Pz4"));
        assert_eq!(r("${{ $.inputs.list | base64 }}"), json!(["YWI=", 1, null]));
        assert_eq!(r("${{ $.inputs.n | base64url }}"), json!(5));
        assert_eq!(r("${{ $.inputs.none | base64url }}"), Value::Null);
        assert_eq!(
            r("id=${{ $.inputs.url | trim | base64url }}"),
            json!("id=aHR0cDovL3gudGVzdC9hP2I9MQ")
        );
    }

    #[test]
    fn other_contexts_name_their_own_roots() {
        const ROOTS_HERE: [&str; 2] = ["inputs", "settings"];
        let t = Template::parse_with_roots("${{ $.settings.tenant }}", &ROOTS_HERE).unwrap();
        assert_eq!(
            t.render(&json!({"settings": {"tenant": "t1"}})).unwrap(),
            json!("t1")
        );
        let err = Template::parse_with_roots("${{ $.case.id }}", &ROOTS_HERE).unwrap_err();
        assert!(
            err.message.contains("expected one of inputs, settings"),
            "{err}"
        );
        let err =
            parse_value_with_roots(&json!({"a": ["${{ $.secrets.X }}"]}), &ROOTS_HERE).unwrap_err();
        assert_eq!(err.location, "a.0");
        assert!(Condition::parse_with_roots("$.settings.x == 1", &ROOTS_HERE).is_ok());
        assert!(Condition::parse_with_roots("$.run.x == 1", &ROOTS_HERE).is_err());
        // Playbooks keep their own roots: no settings, secrets or responses.
        for t in [
            "${{ $.secrets.API_KEY }}",
            "${{ $.settings.x }}",
            "${{ $.response }}",
        ] {
            assert!(Template::parse(t).is_err(), "{t}");
        }
    }

    #[test]
    fn filters() {
        assert_eq!(render("${{ $.alerts[*].id | first }}"), json!("a1"));
        assert_eq!(render("${{ $.alerts[*].id | last }}"), json!("a2"));
        assert_eq!(render("${{ $.alerts[?@.x].id | first }}"), Value::Null);
        assert_eq!(render("${{ $.alerts[?@.x].id | last }}"), Value::Null);
        assert_eq!(render("${{ $.case.id | first }}"), json!(42));
        assert_eq!(render("${{ $.alerts | count }}"), json!(2));
        assert_eq!(
            render("${{ $.alerts[*].observables[*] | count }}"),
            json!(3)
        );
        assert_eq!(render("${{ $.steps.vt.output | count }}"), json!(2));
        assert_eq!(render("${{ $.case.missing | count }}"), json!(0));
        assert_eq!(render("${{ $.case.title | count }}"), json!(1));
        assert_eq!(
            render("${{ $.case.tags | join(', ') }}"),
            json!("vip, mail")
        );
        assert_eq!(
            render(r#"${{ $.inputs.names | join("|") }}"#),
            json!("Ann||2")
        );
        assert_eq!(render("${{ $.case.id | join('-') }}"), json!("42"));
        assert_eq!(render("${{ $.case.nothing | join('-') }}"), json!(""));
        assert_eq!(render("${{ $.case.nothing | default('x') }}"), json!("x"));
        assert_eq!(
            render("${{ $.case.assignee | default(\"n/a\") }}"),
            json!("n/a")
        );
        assert_eq!(render("${{ $.case.note | default(0) }}"), json!(0));
        assert_eq!(
            render("${{ $.case.labels | default([1, 'a']) }}"),
            json!([1, "a"])
        );
        assert_eq!(render("${{ $.alerts[?@.x] | default(null) }}"), Value::Null);
        assert_eq!(render("${{ $.case.closed | default(true) }}"), json!(false));
        assert_eq!(render("${{ $.case.id | default(1) }}"), json!(42));
        assert_eq!(
            render("${{ $.case.title | lower }}"),
            json!("phishing from evil corp")
        );
        assert_eq!(
            render("${{ $.case.title | upper }}"),
            json!("PHISHING FROM EVIL CORP")
        );
        assert_eq!(
            render("${{ $.inputs.owner | trim | lower }}"),
            json!("soc@example.com")
        );
        assert_eq!(
            render("${{ $.inputs.names | upper }}"),
            json!(["ANN", null, 2])
        );
        assert_eq!(render("${{ $.case.id | upper }}"), json!(42));
        assert_eq!(
            render("${{ $.case.tags | json }}"),
            json!(r#"["vip","mail"]"#)
        );
        assert_eq!(
            render("${{ $.case.title | json }}"),
            json!(r#""Phishing from Evil Corp""#)
        );
        assert_eq!(render("${{ $.case.nothing | json }}"), json!("null"));
        assert_eq!(
            render("${{ $.alerts[*].id | first | upper | json }}"),
            json!(r#""A1""#)
        );
        // Filter arguments may contain the placeholder's own delimiters.
        assert_eq!(
            render("${{ $.case.tags | join(' }} | ') }}"),
            json!("vip }} | mail")
        );
        assert_eq!(
            render("${{ $.case.x | default('${{ no }}') }}"),
            json!("${{ no }}")
        );
        assert_eq!(render("${{ $.case.x|default('a')|upper }}"), json!("A"));
    }

    #[test]
    fn template_errors_name_position_and_expectation() {
        assert_eq!(
            template_err("ab ${{ $.case.title"),
            "position 4: '${{' is never closed with '}}'"
        );
        assert_eq!(
            template_err("${{ case.title }}"),
            "position 5: expected a JSONPath starting with $, found 'case'"
        );
        assert_eq!(
            template_err("${{ $.case.title | nope }}"),
            "position 20: unknown filter 'nope': expected one of first, last, count, join, \
             default, lower, upper, trim, json, base64, base64url"
        );
        assert_eq!(
            template_err("${{ $.case.title | }}"),
            "position 20: expected a filter name (first, last, count, join, default, lower, \
             upper, trim, json, base64, base64url), found '}'"
        );
        assert_eq!(
            template_err("${{ $.csae.title }}"),
            "position 5: unknown context key 'csae' in $.csae.title: expected one of case, \
             alerts, trigger, inputs, steps, item, run, output"
        );
        assert!(template_err("${{ $.alerts[?@.a == $.nope.b] }}")
            .contains("unknown context key 'nope'"));
        assert_eq!(
            template_err("${{ $.case[ }}"),
            "position 11: '[' is never closed"
        );
        assert_eq!(
            template_err("${{ $.case. }}"),
            "position 12: expected a member name or * after '.', found ' '"
        );
        assert_eq!(
            template_err("${{ $.case.title x }}"),
            "position 18: expected '|' or '}}', found 'x'"
        );
        assert_eq!(
            template_err("${{ $.case.title | join(1) }}"),
            "position 25: expected a quoted string, found '1'"
        );
        assert_eq!(
            template_err("${{ $.case.title | default( }}"),
            "position 29: expected a literal, found '}'"
        );
        assert_eq!(
            template_err("${{ $.case.title | first() }}"),
            "position 25: expected '|' or '}}', found '('"
        );
        assert_eq!(
            template_err("é ${{ $.case[) }}"),
            "position 14: expected ']', found ')'"
        );
        let e = template_err("${{ $.alerts[?@.x ==] }}");
        assert!(
            e.starts_with("position 5: invalid JSONPath $.alerts[?@.x ==]: "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert!(template_err("${{ $.a }}").contains("unknown context key 'a'"));
        assert!(template_err("${{ }}").starts_with("position 5: expected a JSONPath"));
        assert!(template_err("${{").starts_with("position 4: expected a JSONPath"));
    }

    #[test]
    fn template_limits() {
        let long = format!(
            "${{{{ $.case.title | default('{}') }}}}",
            "x".repeat(MAX_EXPR_LEN)
        );
        assert!(template_err(&long).contains("placeholder longer than 4096 bytes"));
        let text = "x".repeat(MAX_TEMPLATE_LEN);
        assert!(Template::parse(&text).is_ok());
        let e = template_err(&format!("{text}x"));
        assert!(e.starts_with("template is 65537 bytes"), "{e}");
        let nested = format!("${{{{ $.alerts{}0{} }}}}", "[".repeat(65), "]".repeat(65));
        assert!(template_err(&nested).contains("nested more than 64 levels deep"));
    }

    #[test]
    fn template_references() {
        let t = Template::parse(
            "${{ $.case.title }} ${{ $.steps.vt.output.malicious }} ${{ $.steps['my-step'] }} \
             ${{ $.alerts[?@.id == $.trigger.alert_id].id }} ${{ $.case.id }} \
             ${{ $.steps[*].status }} ${{ $..x }} ${{ $.steps }}",
        )
        .unwrap();
        assert_eq!(
            t.references(),
            [
                r(Some("case"), None),
                r(Some("steps"), Some("vt")),
                r(Some("steps"), Some("my-step")),
                r(Some("alerts"), None),
                r(Some("trigger"), None),
                r(Some("steps"), None),
                r(None, None),
            ]
        );
        assert!(Template::parse("plain").unwrap().references().is_empty());
    }

    #[test]
    fn structures() {
        let v = json!({
            "to": "${{ $.inputs.owner | trim }}",
            "count": "${{ $.alerts | count }}",
            "${{ $.case.id }}": "keys are not templates",
            "fixed": [1, true, null, "plain", { "x": "$${{ y }}" }],
            "items": ["a", "${{ $.alerts[*].id }}", { "deep": ["${{ $.item.score }}"] }]
        });
        let parsed = parse_value(&v).unwrap();
        let out = parsed.render(&ctx()).unwrap();
        assert_eq!(
            out,
            json!({
                "to": "SOC@Example.com",
                "count": 2,
                "${{ $.case.id }}": "keys are not templates",
                "fixed": [1, true, null, "plain", { "x": "${{ y }}" }],
                "items": ["a", ["a1", "a2"], { "deep": [60] }]
            })
        );
        assert_eq!(render_value(&v, &ctx()).unwrap(), out);
        assert_eq!(parsed.to_value(), v);
        assert_eq!(
            parsed.references(),
            // In key order: serde_json objects are sorted.
            [
                r(Some("alerts"), None),
                r(Some("item"), None),
                r(Some("inputs"), None)
            ]
        );
        assert!(matches!(
            parse_value(&json!([1, "a", {"b": "c"}])),
            Ok(TemplateValue::Literal(_))
        ));
        assert!(matches!(
            parse_value(&json!("$${{")),
            Ok(TemplateValue::Template(_))
        ));

        let e = parse_value(&json!({ "body": { "items": ["ok", "${{ $.nope }}"] } })).unwrap_err();
        assert_eq!(e.location, "body.items.1");
        assert_eq!(e.position, 5);
        assert!(e
            .to_string()
            .starts_with("body.items.1: position 5: unknown context key"));
        let e = parse_value(&json!("${{ x }}")).unwrap_err();
        assert_eq!(e.location, "");

        let mut deep = json!("${{ $.case.id }}");
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert!(parse_value(&deep).is_ok());
        let e = parse_value(&json!([deep])).unwrap_err();
        assert_eq!(e.position, 0);
        assert!(
            e.to_string().ends_with(": nested more than 64 levels deep"),
            "{e}"
        );
    }

    // --- conditions --------------------------------------------------------------------

    #[test]
    fn equality() {
        assert!(eval("$.case.severity == 'high'"));
        assert!(eval("$.case.severity == \"high\""));
        assert!(!eval("$.case.severity == 'High'"));
        assert!(eval("$.case.severity != 'low'"));
        assert!(eval("$.case.id == 42"));
        assert!(eval("$.case.id == 42.0"));
        assert!(eval("42 == $.case.id"));
        assert!(eval("$.case.id != '42'"));
        assert!(eval("$.case.score == 7.5"));
        assert!(eval("$.case.big == 18446744073709551615"));
        assert!(!eval("$.case.big == 18446744073709551614"));
        assert!(eval("$.case.closed == false"));
        assert!(eval("$.case.assignee == null"));
        assert!(eval("$.case.missing == null"));
        assert!(!eval("$.case.note == null"));
        assert!(eval("$.case.tags == ['vip', 'mail']"));
        assert!(!eval("$.case.tags == ['mail', 'vip']"));
        assert!(eval("$.alerts[*].id == ['a1', 'a2']"));
        assert!(eval("$.steps.vt.output == $.steps.vt.output"));
        assert!(eval("$.steps.vt.output != $.steps['my-step'].output"));
        assert!(!eval("$.case.labels == $.alerts[?@.x]"));
        assert!(eval("[1, [2.0]] == [1.0, [2]]"));
    }

    #[test]
    fn ordering() {
        assert!(eval("$.steps.vt.output.malicious > 3"));
        assert!(!eval("$.steps.vt.output.malicious > 5"));
        assert!(eval("$.steps.vt.output.malicious >= 5"));
        assert!(eval("$.steps.vt.output.malicious < 5.5"));
        assert!(eval("$.steps.vt.output.malicious <= 5"));
        assert!(!eval("$.steps.vt.output.malicious < 5"));
        assert!(eval("-1 < 0") && eval("-1.5e1 < -1") && eval("1e3 > 999"));
        assert!(eval("$.case.big > 9223372036854775807"));
        assert!(eval("-9223372036854775808 < $.case.big"));
        assert!(eval("'abc' < 'abd'") && eval("'b' > 'abc'") && eval("'a' <= 'a'"));
        assert!(eval("'Z' < 'a'"));
        // Mismatched types never order.
        for op in ["<", "<=", ">", ">="] {
            for (a, b) in [
                ("'5'", "5"),
                ("5", "'5'"),
                ("null", "0"),
                ("true", "false"),
                ("[1]", "[2]"),
            ] {
                assert!(!eval(&format!("{a} {op} {b}")), "{a} {op} {b}");
            }
            assert!(!eval(&format!("$.case.missing {op} 1")));
        }
    }

    #[test]
    fn contains_in_and_matches() {
        assert!(eval("$.case.title contains 'Evil'"));
        assert!(!eval("$.case.title contains 'evil'"));
        assert!(eval("$.case.tags contains 'vip'"));
        assert!(!eval("$.case.tags contains 'vi'"));
        assert!(eval("$.steps contains 'vt'"));
        assert!(!eval("$.steps contains 'nope'"));
        assert!(!eval("$.case.id contains 4"));
        assert!(!eval("$.case.title contains 1"));
        assert!(eval("$.alerts[*].observables[*].type contains 'ip'"));
        assert!(eval("[1, 2.0] contains 2"));
        assert!(eval("'vip' in $.case.tags"));
        assert!(eval("'Evil' in $.case.title"));
        assert!(eval("$.case.severity in ['high', 'critical']"));
        assert!(!eval("$.case.severity in ['low']"));
        assert!(!eval("$.case.severity in []"));
        assert!(eval("'vt' in $.steps"));
        assert!(eval("'a2' in $.alerts[*].id"));
        assert!(!eval("'a2' in $.case.missing"));
        assert!(eval("$.case.title matches '(?i)^phish'"));
        assert!(!eval("$.case.title matches '^phish'"));
        assert!(eval("$.case.title matches \"Evil\\\\s+Corp$\""));
        assert!(!eval("$.case.id matches '4'"));
        assert!(!eval("$.case.missing matches '.*'"));
    }

    #[test]
    fn functions_and_truthiness() {
        assert!(eval("exists($.case.title)"));
        assert!(eval("exists( $.case.note )"));
        assert!(!eval("exists($.case.assignee)"));
        assert!(!eval("exists($.case.missing)"));
        assert!(eval("exists($.alerts[*].observables[?@.type == 'ip'])"));
        assert!(!eval("exists($.alerts[?@.id == 'zz'])"));
        for path in [
            "$.case.note",
            "$.case.labels",
            "$.case.assignee",
            "$.case.missing",
            "$.alerts[?@.x]",
        ] {
            assert!(eval(&format!("empty({path})")), "{path}");
            assert!(!eval(path), "{path}");
        }
        for path in [
            "$.case.title",
            "$.case.tags",
            "$.case.id",
            "$.steps",
            "$.alerts[*].id",
        ] {
            assert!(!eval(&format!("empty({path})")), "{path}");
            assert!(eval(path), "{path}");
        }
        assert!(!eval("$.case.closed") && !eval("$.run.dry_run"));
        for lit in ["null", "false", "0", "0.0", "-0", "''", "\"\"", "[]"] {
            assert!(!eval(lit), "{lit}");
        }
        for lit in ["true", "1", "-0.5", "'0'", "'false'", "[null]", "[[]]"] {
            assert!(eval(lit), "{lit}");
        }
    }

    #[test]
    fn not_and_or_precedence() {
        assert!(!eval("!$.case.title") && eval("!$.case.closed") && eval("not $.case.closed"));
        assert!(eval("!!true") && eval("not not true") && eval("! ! true"));
        assert!(eval("!exists($.case.missing)") && eval("not empty($.case.tags)"));
        // `not` takes a whole comparison (unlike C's `!`).
        assert!(eval("not 1 == 2"));
        assert!(eval("!1 == 2"));
        assert!(eval("!(1 == 2)"));
        // && binds tighter than ||.
        assert!(eval("true || false && false"));
        assert!(!eval("(true || false) && false"));
        assert!(eval("false && false || true"));
        assert!(!eval("false && (false || true)"));
        assert!(eval("true or false and false") && !eval("(true or false) and false"));
        // ! binds tighter than && and ||.
        assert!(eval("not true or true"));
        assert!(!eval("not (true or true)"));
        assert!(!eval("!true && true"));
        assert!(eval(
            "$.case.id == 42 && $.case.severity == 'high' && !$.case.closed"
        ));
        assert!(eval("$.case.id == 1 || $.case.id == 2 || $.case.id == 42"));
        assert!(eval(
            "($.item.score >= 50 || $.item.tags contains 'vip') and $.run.dry_run == false"
        ));
        assert!(eval("((((true))))"));
        assert!(eval(" \t\n true \n"));
        assert!(eval("$.case.id==42&&$.case.score<8"));
    }

    #[test]
    fn literals() {
        assert!(eval("'it\\'s' == \"it's\""));
        assert!(eval("\"say \\\"hi\\\"\" == 'say \"hi\"'"));
        assert!(eval("'a\\\\b' contains '\\\\'"));
        assert!(eval("'\\n\\r\\t' != ''"));
        assert!(eval("'é€😀' == \"é€😀\""));
        assert!(eval("0 == -0") && eval("1.5 == 15e-1") && eval("1E2 == 100"));
        assert!(eval("[] == []") && eval("[true, null, 'x', [1]] contains [1]"));
        assert!(eval("[ 1 , 2 ] == [1,2]"));
        assert!(eval("null == null") && eval("true != false"));
    }

    #[test]
    fn short_circuit_keeps_results() {
        // The right side is still parsed (and checked) but not evaluated.
        let c = Condition::parse("false && $.alerts[*].id contains 'a1'").unwrap();
        assert!(!c.eval(&json!({})).unwrap());
        let c = Condition::parse("true || $.case.x").unwrap();
        assert!(c.eval(&json!(null)).unwrap());
        // Contexts that are not objects find nothing rather than failing.
        let c = Condition::parse("exists($.case.x) || $.case.x == null").unwrap();
        assert!(c.eval(&json!([1, 2])).unwrap());
        assert!(c.eval(&json!("s")).unwrap());
    }

    #[test]
    fn condition_errors_name_position_and_expectation() {
        assert_eq!(
            condition_err("$.case.title x"),
            "position 14: expected an operator such as == or contains, found 'x'"
        );
        assert_eq!(
            condition_err("$.case.id = 1"),
            "position 11: expected an operator such as == or contains, found '='"
        );
        assert_eq!(
            condition_err("$.case.id =="),
            "position 13: expected a JSONPath ($...), a literal, exists(...), empty(...), ! or (, \
             found end of input"
        );
        assert_eq!(
            condition_err("($.case.id == 1"),
            "position 16: expected ')', && or ||, found end of input"
        );
        assert_eq!(
            condition_err("$.case.id == 1)"),
            "position 15: expected &&, || or the end (this ')' has no '('), found ')'"
        );
        assert_eq!(
            condition_err("true false"),
            "position 6: expected an operator such as == or contains, found 'false'"
        );
        assert_eq!(
            condition_err("1 == 1 == 1"),
            "position 8: expected &&, || or the end, found '='"
        );
        assert_eq!(condition_err("'abc"), "position 1: string is never closed");
        assert_eq!(
            condition_err("'a\\qb' == 1"),
            "position 3: unknown escape: expected one of \\\\ \\' \\\" \\n \\r \\t"
        );
        assert_eq!(
            condition_err("exists(1)"),
            "position 8: expected a JSONPath starting with $, found '1'"
        );
        assert_eq!(
            condition_err("exists $.a"),
            "position 8: expected '(', found '$'"
        );
        assert_eq!(
            condition_err("empty($.case.x"),
            "position 15: expected ')', found end of input"
        );
        assert_eq!(
            condition_err("   "),
            "position 4: expected a condition, found end of input"
        );
        assert_eq!(
            condition_err("&& true"),
            "position 1: expected a JSONPath ($...), a literal, exists(...), empty(...), ! or (, \
             found '&'"
        );
        assert_eq!(
            condition_err("case.id == 1"),
            "position 1: expected a JSONPath ($...), a literal, exists(...), empty(...), ! or (, \
             found 'case'"
        );
        assert_eq!(
            condition_err("1e999 == 1"),
            "position 1: number 1e999 is out of range"
        );
        assert_eq!(
            condition_err("- 1 == 1"),
            "position 2: expected a digit, found ' '"
        );
        assert_eq!(
            condition_err("1. == 1"),
            "position 3: expected a digit after '.', found ' '"
        );
        assert_eq!(
            condition_err("1e == 1"),
            "position 3: expected a digit in the exponent, found ' '"
        );
        assert_eq!(
            condition_err("$.case.id in [1, 2"),
            "position 19: expected ',' or ']', found end of input"
        );
        assert_eq!(
            condition_err("$.case.id in [1, x]"),
            "position 18: expected a literal, found 'x'"
        );
        assert_eq!(
            condition_err("$.case.title matches $.x"),
            "position 22: expected a quoted regular expression after matches, found '$'"
        );
        let e = condition_err("$.case.title matches '(unclosed'");
        assert!(
            e.starts_with("position 22: invalid regular expression: "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert!(condition_err("$.case.title matches 'a{1000}{1000}'")
            .contains("invalid regular expression"));
        assert_eq!(
            condition_err("é == $.csae"),
            "position 1: expected a JSONPath ($...), a literal, exists(...), empty(...), ! or (, \
             found 'é'"
        );
        assert!(condition_err("1 == $.csae").starts_with("position 6: unknown context key 'csae'"));
        assert!(
            condition_err("$.alerts[?@.x == ] == 1").starts_with("position 1: invalid JSONPath")
        );
        assert_eq!(
            condition_err("$.case.x.. == 1"),
            "position 11: expected a member name, * or [ after '..', found ' '"
        );
        assert_eq!(condition_err("!= 1"), "position 1: expected a JSONPath ($...), a literal, exists(...), empty(...), ! or (, found '!'");
    }

    #[test]
    fn condition_limits() {
        let ok = format!("{}true{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(Condition::parse(&ok).is_ok());
        let deep = format!("({ok})");
        assert!(condition_err(&deep).contains("nested more than 64 levels deep"));
        assert!(Condition::parse(&format!("{}true", "!".repeat(MAX_DEPTH))).is_ok());
        assert!(
            condition_err(&format!("{}true", "not ".repeat(MAX_DEPTH + 1))).contains("nested more")
        );
        let lists = format!(
            "{}1{} == 1",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        );
        assert!(condition_err(&lists).contains("nested more"));
        let long = format!("$.case.title == '{}'", "x".repeat(MAX_EXPR_LEN));
        assert!(condition_err(&long).starts_with("condition is 4114 bytes, longer than the 4096"));
        // Many terms are flat, not deep.
        let many = vec!["$.case.id == 1"; 200].join(" || ");
        assert!(!Condition::parse(&many).unwrap().eval(&ctx()).unwrap());
    }

    #[test]
    fn condition_references() {
        let c = Condition::parse(
            "$.case.severity == 'high' && ($.steps.vt.output.malicious > 3 || \
             exists($.steps['my-step'].output)) && !empty($.inputs.x) && $.case.id in $.item.ids \
             && $.alerts[?@.id == $.trigger.alert_id] && $.run.id matches 'r' && $.case.x",
        )
        .unwrap();
        assert_eq!(
            c.references(),
            [
                r(Some("case"), None),
                r(Some("steps"), Some("vt")),
                r(Some("steps"), Some("my-step")),
                r(Some("inputs"), None),
                r(Some("item"), None),
                r(Some("alerts"), None),
                r(Some("trigger"), None),
                r(Some("run"), None),
            ]
        );
        assert!(Condition::parse("1 == 1").unwrap().references().is_empty());
    }

    #[test]
    fn serde_round_trips() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Step {
            #[serde(rename = "if")]
            when: Option<Condition>,
            title: Template,
            with: TemplateValue,
        }
        let v = json!({
            "if": "$.case.id == 42",
            "title": "Case ${{ $.case.id }}",
            "with": { "a": ["${{ $.case.tags }}", 1], "b": "$${{" }
        });
        let step: Step = serde_json::from_value(v.clone()).unwrap();
        assert!(step.when.as_ref().unwrap().eval(&ctx()).unwrap());
        assert_eq!(step.title.render(&ctx()).unwrap(), json!("Case 42"));
        assert_eq!(
            step.with.render(&ctx()).unwrap(),
            json!({ "a": [["vip", "mail"], 1], "b": "${{" })
        );
        assert_eq!(serde_json::to_value(&step).unwrap(), v);
        assert_eq!(step.title.to_string(), "Case ${{ $.case.id }}");
        assert_eq!(step.when.unwrap().source(), "$.case.id == 42");
        let e = serde_json::from_value::<Step>(json!({ "if": "1 ==", "title": "", "with": 1 }))
            .unwrap_err();
        assert!(
            e.to_string().contains("position 5: expected a JSONPath"),
            "{e}"
        );
        let e =
            serde_json::from_value::<Step>(json!({ "title": "", "with": { "x": ["${{ $.q }}"] } }))
                .unwrap_err();
        assert!(
            e.to_string()
                .contains("x.0: position 5: unknown context key 'q'"),
            "{e}"
        );
        assert_eq!("${{ $ }}".parse::<Template>().unwrap().source(), "${{ $ }}");
        assert!("(".parse::<Condition>().is_err());
    }

    #[test]
    fn expressions_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Template>();
        shareable::<TemplateValue>();
        shareable::<Condition>();
        shareable::<ExprError>();
    }

    // --- no panics on any input --------------------------------------------------------

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Fragments that reach deep into both parsers more often than random text.
        const TOKENS: &[&str] = &[
            "$",
            ".",
            "..",
            "*",
            "[",
            "]",
            "(",
            ")",
            "'",
            "\"",
            "\\",
            "?",
            "@",
            ",",
            ":",
            "-",
            "${{",
            "$${{",
            "}}",
            "|",
            " ",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "!",
            "&&",
            "||",
            "and",
            "or",
            "not",
            "in",
            "contains",
            "matches",
            "exists",
            "empty",
            "true",
            "false",
            "null",
            "0",
            "1",
            "-2.5e3",
            "1e999",
            "case",
            "alerts",
            "steps",
            "vt",
            "output",
            "item",
            "x",
            "first",
            "count",
            "join",
            "default",
            "upper",
            "json",
            "'a'",
            "'(?i)x'",
            "é",
            "😀",
            "[?@.type == 'url']",
            "[*]",
            "[0:2]",
            "[-1]",
            "length(@.x)",
            "match(@.v, 'a.*')",
            "$.case.tags",
            "$.alerts[*].id",
            "\n",
        ];

        /// Random text: tokens (with or without spaces), characters, and valid
        /// conditions and templates with a token inserted or a stretch removed.
        fn soup() -> impl Strategy<Value = String> {
            use proptest::sample::{select, Index};
            let token = || select(TOKENS);
            let insert = |(src, at, token): (String, Index, &str)| {
                let mut chars: Vec<char> = src.chars().collect();
                let at = at.index(chars.len() + 1);
                chars.splice(at..at, token.chars());
                chars.into_iter().collect::<String>()
            };
            let remove = |(src, a, b): (String, Index, Index)| {
                let chars: Vec<char> = src.chars().collect();
                let (a, b) = (a.index(chars.len() + 1), b.index(chars.len() + 1));
                let (from, to) = (a.min(b), a.max(b));
                chars
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i < from || *i >= to)
                    .map(|(_, c)| *c)
                    .collect::<String>()
            };
            prop_oneof![
                proptest::collection::vec((token(), select(&["", " "][..])), 0..40)
                    .prop_map(|t| t.into_iter().map(|(a, b)| format!("{a}{b}")).collect()),
                ".{0,80}",
                (condition(), any::<Index>(), token()).prop_map(insert),
                (template(), any::<Index>(), token()).prop_map(insert),
                (condition(), any::<Index>(), any::<Index>()).prop_map(remove),
                (template(), any::<Index>(), any::<Index>()).prop_map(remove),
            ]
        }

        fn template() -> impl Strategy<Value = String> {
            let filter = proptest::sample::select(
                &[
                    "",
                    " | first",
                    " | last",
                    " | count",
                    " | join(', ')",
                    " | default('d')",
                    " | lower",
                    " | upper | trim",
                    " | json",
                    " | base64url",
                ][..],
            );
            let placeholder = (
                operand().prop_filter("a path", |o| o.starts_with('$')),
                filter,
            )
                .prop_map(|(p, f)| format!("${{{{ {p}{f} }}}}"));
            proptest::collection::vec(
                prop_oneof![
                    placeholder,
                    Just("text ".to_string()),
                    Just("$${{".to_string())
                ],
                1..4,
            )
            .prop_map(|parts| parts.concat())
        }

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(Value::from),
                "[a-z ]{0,6}".prop_map(Value::String),
                proptest::sample::select(&["url", "ip", "vip", "a1", "x"][..])
                    .prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 32, 4, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    proptest::collection::btree_map(
                        proptest::sample::select(
                            &["case", "alerts", "steps", "vt", "output", "type", "x", "id"][..]
                        )
                        .prop_map(String::from),
                        inner,
                        0..4
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        fn operand() -> impl Strategy<Value = String> {
            proptest::sample::select(
                &[
                    "$.case.x",
                    "$.case.tags",
                    "$.alerts[*].id",
                    "$.steps.vt.output",
                    "$.alerts[?@.type == 'url'].x",
                    "$..id",
                    "$",
                    "$.item[0]",
                    "1",
                    "-2.5",
                    "'x'",
                    "\"url\"",
                    "true",
                    "null",
                    "[1, 'a']",
                    "[]",
                ][..],
            )
            .prop_map(String::from)
        }

        fn condition() -> impl Strategy<Value = String> {
            let op =
                proptest::sample::select(&["==", "!=", "<", "<=", ">", ">=", "contains", "in"][..]);
            let leaf = prop_oneof![
                (operand(), op, operand()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
                operand(),
                operand().prop_map(|a| format!("{a} matches '^(a|u)'")),
                proptest::sample::select(&["$.case.x", "$.alerts[*].id", "$..id"][..])
                    .prop_map(|p| format!("exists({p}) || empty({p})")),
            ];
            leaf.prop_recursive(5, 40, 3, |inner| {
                prop_oneof![
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
                    (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
                    inner.clone().prop_map(|a| format!("!({a})")),
                    inner.prop_map(|a| format!("not ({a})")),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

            #[test]
            fn parsing_anything_never_panics(src in soup(), doc in json_value()) {
                let chars = src.chars().count();
                let ctx = json!({ "case": doc.clone(), "alerts": [doc.clone()], "steps": { "vt": { "output": doc } } });
                match Template::parse(&src) {
                    Ok(t) => {
                        let _ = t.render(&ctx);
                        let _ = t.references();
                    }
                    Err(e) => prop_assert!(e.position <= chars + 1, "{e} for {src:?}"),
                }
                match Condition::parse(&src) {
                    Ok(c) => {
                        let _ = c.eval(&ctx);
                        let _ = c.references();
                    }
                    Err(e) => prop_assert!(e.position <= chars + 1, "{e} for {src:?}"),
                }
                let _ = render_value(&json!({ "a": [src.clone()], "b": src }), &ctx);
            }

            #[test]
            fn generated_templates_parse_and_render(src in template(), doc in json_value()) {
                let t = Template::parse(&src);
                prop_assert!(t.is_ok(), "{src}: {:?}", t.err());
                let ctx = json!({ "case": doc.clone(), "alerts": [doc.clone()], "item": doc });
                prop_assert!(t.unwrap().render(&ctx).is_ok(), "{src} on {ctx}");
            }

            #[test]
            fn generated_conditions_parse_and_evaluate(src in condition(), doc in json_value()) {
                let c = Condition::parse(&src);
                prop_assert!(c.is_ok(), "{src}: {:?}", c.err());
                let c = c.unwrap();
                for ctx in [
                    json!({ "case": doc.clone(), "alerts": [doc.clone(), doc.clone()], "item": doc.clone() }),
                    doc.clone(),
                    Value::Null,
                ] {
                    prop_assert!(c.eval(&ctx).is_ok(), "{src} on {ctx}");
                }
                // The same condition as a template placeholder's path renders without error.
                let t = Template::parse("${{ $.case | json }} ${{ $.alerts[*] | count }}").unwrap();
                let rendered = t.render(&json!({ "case": doc.clone(), "alerts": [doc] }));
                prop_assert!(rendered.is_ok());
            }
        }
    }
}
