//! Observables (indicators) with a type and a role, validated and put in canonical form so
//! the same indicator written two ways is one value: IPv6 in RFC 5952 form, lower-case
//! domains and hashes, parsed and normalized URLs, and refanged `hxxp://evil[.]com` forms.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// What an observable is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservableKind {
    Ip,
    Domain,
    Url,
    Md5,
    Sha1,
    Sha256,
    Email,
    User,
    Host,
    File,
    Process,
    /// An Internet Message-ID, which email containment actions address messages by.
    MessageId,
    /// Anything else a vendor marks as an indicator (kept trimmed, not interpreted).
    Other,
}

/// Every kind, for parsing and tests.
pub const ALL_KINDS: [ObservableKind; 13] = [
    ObservableKind::Ip,
    ObservableKind::Domain,
    ObservableKind::Url,
    ObservableKind::Md5,
    ObservableKind::Sha1,
    ObservableKind::Sha256,
    ObservableKind::Email,
    ObservableKind::User,
    ObservableKind::Host,
    ObservableKind::File,
    ObservableKind::Process,
    ObservableKind::MessageId,
    ObservableKind::Other,
];

impl ObservableKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObservableKind::Ip => "ip",
            ObservableKind::Domain => "domain",
            ObservableKind::Url => "url",
            ObservableKind::Md5 => "md5",
            ObservableKind::Sha1 => "sha1",
            ObservableKind::Sha256 => "sha256",
            ObservableKind::Email => "email",
            ObservableKind::User => "user",
            ObservableKind::Host => "host",
            ObservableKind::File => "file",
            ObservableKind::Process => "process",
            ObservableKind::MessageId => "message_id",
            ObservableKind::Other => "other",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<ObservableKind> {
        ALL_KINDS.into_iter().find(|k| k.as_str() == s)
    }

    /// Order used to pick an alert's primary observable among those of the same role.
    pub fn primary_rank(self) -> u8 {
        match self {
            ObservableKind::Email => 0,
            ObservableKind::Ip => 1,
            ObservableKind::Host => 2,
            ObservableKind::User => 3,
            ObservableKind::Url => 4,
            ObservableKind::Domain => 5,
            ObservableKind::Sha256 => 6,
            ObservableKind::Sha1 => 7,
            ObservableKind::Md5 => 8,
            ObservableKind::File => 9,
            ObservableKind::Process => 10,
            ObservableKind::MessageId => 11,
            ObservableKind::Other => 12,
        }
    }
}

/// The part an observable plays in the alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObservableRole {
    Src,
    Dst,
    Sender,
    Recipient,
    /// What was attacked or affected (a host, an account).
    Target,
    /// Who acted (an account, a process).
    Actor,
    Related,
}

/// Every role.
pub const ALL_ROLES: [ObservableRole; 7] = [
    ObservableRole::Src,
    ObservableRole::Dst,
    ObservableRole::Sender,
    ObservableRole::Recipient,
    ObservableRole::Target,
    ObservableRole::Actor,
    ObservableRole::Related,
];

impl ObservableRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ObservableRole::Src => "src",
            ObservableRole::Dst => "dst",
            ObservableRole::Sender => "sender",
            ObservableRole::Recipient => "recipient",
            ObservableRole::Target => "target",
            ObservableRole::Actor => "actor",
            ObservableRole::Related => "related",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<ObservableRole> {
        ALL_ROLES.into_iter().find(|r| r.as_str() == s)
    }

    /// Attacker-side roles come first when picking a primary observable.
    pub fn primary_rank(self) -> u8 {
        match self {
            ObservableRole::Src | ObservableRole::Sender | ObservableRole::Actor => 0,
            ObservableRole::Target => 1,
            ObservableRole::Dst | ObservableRole::Recipient => 2,
            ObservableRole::Related => 3,
        }
    }
}

/// An indicator in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Observable {
    #[serde(rename = "type")]
    pub kind: ObservableKind,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<ObservableRole>,
}

/// A value that is not a valid observable of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind}: {reason}", kind = .kind.as_str())]
pub struct ObservableError {
    pub kind: ObservableKind,
    pub value: String,
    pub reason: String,
}

/// Longest value stored; longer ones are refused rather than cut.
pub const MAX_VALUE_LEN: usize = 4096;

impl Observable {
    /// Validates and canonicalizes `raw` as an observable of `kind`.
    pub fn new(
        kind: ObservableKind,
        raw: &str,
        role: Option<ObservableRole>,
    ) -> Result<Observable, ObservableError> {
        let fail = |reason: &str| ObservableError {
            kind,
            value: raw.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        if trimmed.len() > MAX_VALUE_LEN {
            return Err(fail("it is too long"));
        }
        if trimmed.chars().any(|c| c.is_control()) {
            return Err(fail("it contains control characters"));
        }
        let value =
            match kind {
                ObservableKind::Ip => canonical_ip(&refang(trimmed))
                    .ok_or_else(|| fail("not an IPv4 or IPv6 address"))?,
                ObservableKind::Domain => {
                    canonical_domain(&refang(trimmed)).map_err(|r| fail(&r))?
                }
                ObservableKind::Url => canonical_url(&refang(trimmed)).map_err(|r| fail(&r))?,
                ObservableKind::Md5 => canonical_hex(trimmed, 32)
                    .ok_or_else(|| fail("expected 32 hexadecimal digits"))?,
                ObservableKind::Sha1 => canonical_hex(trimmed, 40)
                    .ok_or_else(|| fail("expected 40 hexadecimal digits"))?,
                ObservableKind::Sha256 => canonical_hex(trimmed, 64)
                    .ok_or_else(|| fail("expected 64 hexadecimal digits"))?,
                ObservableKind::Email => canonical_email(&refang(trimmed)).map_err(|r| fail(&r))?,
                ObservableKind::User => trimmed.to_lowercase(),
                ObservableKind::Host => canonical_host(&refang(trimmed)).map_err(|r| fail(&r))?,
                ObservableKind::MessageId => {
                    let id = trimmed.trim_start_matches('<').trim_end_matches('>');
                    if id.is_empty() || !id.contains('@') || id.contains(char::is_whitespace) {
                        return Err(fail("expected <local@domain>"));
                    }
                    format!("<{id}>")
                }
                ObservableKind::File | ObservableKind::Process | ObservableKind::Other => {
                    trimmed.to_string()
                }
            };
        Ok(Observable { kind, value, role })
    }

    /// Like `new`, for a value of unknown shape: the kind is guessed from the value.
    pub fn guess(raw: &str, role: Option<ObservableRole>) -> Option<Observable> {
        let cleaned = refang(raw.trim());
        let candidates = [
            ObservableKind::Ip,
            ObservableKind::Md5,
            ObservableKind::Sha1,
            ObservableKind::Sha256,
            ObservableKind::Email,
        ];
        for kind in candidates {
            if let Ok(o) = Observable::new(kind, &cleaned, role) {
                return Some(o);
            }
        }
        if cleaned.contains("://") {
            return Observable::new(ObservableKind::Url, &cleaned, role).ok();
        }
        Observable::new(ObservableKind::Domain, &cleaned, role).ok()
    }
}

/// Undoes the usual defanging: `hxxp`, `[.]`, `(.)`, `{.}`, `[dot]`, `[@]`, `[at]`, `[:]`, `[://]`.
pub fn refang(s: &str) -> String {
    let mut out = s.to_string();
    for (from, to) in [
        ("[://]", "://"),
        ("[:]", ":"),
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("(dot)", "."),
        ("[@]", "@"),
        ("[at]", "@"),
        ("(at)", "@"),
    ] {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    let lower = out.to_ascii_lowercase();
    for (from, to) in [
        ("hxxps://", "https://"),
        ("hxxp://", "http://"),
        ("fxp://", "ftp://"),
    ] {
        if lower.starts_with(&from.to_ascii_lowercase()) {
            out = format!("{to}{}", &out[from.len()..]);
            break;
        }
    }
    out
}

fn canonical_ip(s: &str) -> Option<String> {
    let s = s.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = s.parse().ok()?;
    // `::ffff:192.0.2.1` is the IPv4 address seen through a dual-stack socket.
    Some(ip.to_canonical().to_string())
}

fn canonical_domain(s: &str) -> Result<String, String> {
    let s = s.trim_end_matches('.');
    if s.contains("://") || s.contains('/') || s.contains('@') || s.contains(':') {
        return Err("a domain has no scheme, path, port or user".into());
    }
    if s.parse::<IpAddr>().is_ok() {
        return Err("that is an IP address".into());
    }
    match url::Host::parse(s) {
        Ok(url::Host::Domain(d)) if d.contains('.') && valid_labels(&d) => Ok(d),
        Ok(url::Host::Domain(_)) => {
            Err("expected a dotted name of letters, digits and hyphens".into())
        }
        Ok(_) => Err("that is an IP address".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn valid_labels(d: &str) -> bool {
    d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn canonical_host(s: &str) -> Result<String, String> {
    let s = s.trim_end_matches('.').to_lowercase();
    if let Some(ip) = canonical_ip(&s) {
        return Ok(ip);
    }
    if valid_labels(&s) {
        return Ok(s);
    }
    match url::Host::parse(&s) {
        Ok(url::Host::Domain(d)) if valid_labels(&d) => Ok(d),
        _ => Err("expected a host name".into()),
    }
}

fn canonical_url(s: &str) -> Result<String, String> {
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else if s.starts_with("www.") {
        format!("http://{s}")
    } else {
        return Err("expected a URL with a scheme such as https://".into());
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| e.to_string())?;
    if url.host_str().is_none() {
        return Err("the URL has no host".into());
    }
    Ok(url.to_string())
}

fn canonical_hex(s: &str, len: usize) -> Option<String> {
    (s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

fn canonical_email(s: &str) -> Result<String, String> {
    // Accept `Name <user@example.org>` and `mailto:` forms vendors put in headers.
    let s = match (s.rfind('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    let s = s.trim().trim_start_matches("mailto:");
    let (local, domain) = s.rsplit_once('@').ok_or("expected local@domain")?;
    if local.is_empty()
        || local.len() > 64
        || local.contains(char::is_whitespace)
        || local.contains('@')
    {
        return Err("the part before @ is empty, too long or has spaces".into());
    }
    let domain = canonical_domain(domain)?;
    Ok(format!("{}@{domain}", local.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ObservableKind::*;

    fn canon(kind: ObservableKind, raw: &str) -> String {
        Observable::new(kind, raw, None)
            .unwrap_or_else(|e| panic!("{e}"))
            .value
    }

    #[test]
    fn ips_are_canonical() {
        assert_eq!(canon(Ip, " 192.0.2.1 "), "192.0.2.1");
        assert_eq!(canon(Ip, "2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
        assert_eq!(canon(Ip, "[2001:db8::1]"), "2001:db8::1");
        assert_eq!(canon(Ip, "::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(canon(Ip, "192.0.2[.]1"), "192.0.2.1");
        assert!(Observable::new(Ip, "999.1.1.1", None).is_err());
        assert!(Observable::new(Ip, "example.com", None).is_err());
    }

    #[test]
    fn domains_are_lower_case_and_refanged() {
        assert_eq!(canon(Domain, "Evil.Example.COM."), "evil.example.com");
        assert_eq!(canon(Domain, "evil[.]example[.]com"), "evil.example.com");
        assert_eq!(canon(Domain, "bücher.example"), "xn--bcher-kva.example");
        assert!(Observable::new(Domain, "localhost", None).is_err());
        assert!(Observable::new(Domain, "http://x.com/", None).is_err());
        assert!(Observable::new(Domain, "10.0.0.1", None).is_err());
        assert!(Observable::new(Domain, "bad_-.-host..com", None).is_err());
    }

    #[test]
    fn urls_are_normalized_and_refanged() {
        assert_eq!(
            canon(Url, "hxxp://Evil.Example.com:80/a/../login?x=1"),
            "http://evil.example.com/login?x=1"
        );
        assert_eq!(canon(Url, "hxxps://evil[.]com/p"), "https://evil.com/p");
        assert_eq!(canon(Url, "HTTPS://EXAMPLE.ORG"), "https://example.org/");
        assert_eq!(canon(Url, "www.example.org/x"), "http://www.example.org/x");
        assert!(Observable::new(Url, "not a url", None).is_err());
        assert!(Observable::new(Url, "mailto:a@b.c", None).is_err());
    }

    #[test]
    fn hashes_are_lower_case_and_sized() {
        assert_eq!(
            canon(Md5, "D41D8CD98F00B204E9800998ECF8427E"),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert!(Observable::new(Sha1, "d41d8cd98f00b204e9800998ecf8427e", None).is_err());
        assert!(Observable::new(Sha256, &"g".repeat(64), None).is_err());
        assert_eq!(canon(Sha256, &"AB".repeat(32)), "ab".repeat(32));
    }

    #[test]
    fn emails_are_canonical() {
        assert_eq!(
            canon(Email, "Alice <Alice@Example.ORG>"),
            "alice@example.org"
        );
        assert_eq!(canon(Email, "mailto:bob@example.org"), "bob@example.org");
        assert_eq!(canon(Email, "phish[@]evil[.]com"), "phish@evil.com");
        assert!(Observable::new(Email, "no-at-sign", None).is_err());
        assert!(Observable::new(Email, "@example.org", None).is_err());
    }

    #[test]
    fn other_kinds() {
        assert_eq!(canon(Host, "WS-042.Corp.Example"), "ws-042.corp.example");
        assert_eq!(canon(Host, "10.1.2.3"), "10.1.2.3");
        assert_eq!(canon(User, "CORP\\Alice"), "corp\\alice");
        assert_eq!(canon(MessageId, "abc@mail.example"), "<abc@mail.example>");
        assert_eq!(canon(File, "  invoice.pdf.exe "), "invoice.pdf.exe");
        assert!(Observable::new(File, "   ", None).is_err());
        assert!(Observable::new(File, "a\u{0}b", None).is_err());
    }

    #[test]
    fn guessing() {
        assert_eq!(Observable::guess("8.8.8.8", None).unwrap().kind, Ip);
        assert_eq!(Observable::guess("hxxp://x[.]com", None).unwrap().kind, Url);
        assert_eq!(Observable::guess("a@b.com", None).unwrap().kind, Email);
        assert_eq!(
            Observable::guess(&"a".repeat(64), None).unwrap().kind,
            Sha256
        );
        assert_eq!(Observable::guess("evil.com", None).unwrap().kind, Domain);
        assert!(Observable::guess("just words", None).is_none());
    }

    #[test]
    fn names_round_trip() {
        for k in ALL_KINDS {
            assert_eq!(ObservableKind::parse(k.as_str()), Some(k));
        }
        for r in ALL_ROLES {
            assert_eq!(ObservableRole::parse(r.as_str()), Some(r));
        }
    }
}
