//! Actions built into the engine, with the inputs each takes.

/// A built-in action's signature.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    /// Inputs that must be given.
    pub required: &'static [&'static str],
    /// Inputs that may be given.
    pub optional: &'static [&'static str],
    /// At least one of these must be given (empty: no such rule).
    pub one_of: &'static [&'static str],
}

/// Every built-in.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "case.set",
        required: &[],
        optional: &["status", "severity", "title", "disposition"],
        one_of: &["status", "severity", "title"],
    },
    Builtin {
        name: "case.comment",
        required: &["body"],
        optional: &[],
        one_of: &[],
    },
    Builtin {
        name: "case.tag",
        required: &["tags"],
        optional: &["remove"],
        one_of: &[],
    },
    Builtin {
        name: "case.assign",
        required: &["assignee"],
        optional: &[],
        one_of: &[],
    },
    Builtin {
        name: "notify.email",
        required: &["to", "subject", "body"],
        optional: &["html"],
        one_of: &[],
    },
    Builtin {
        name: "notify.webhook",
        required: &["url"],
        optional: &["body", "headers"],
        one_of: &[],
    },
    Builtin {
        name: "http.request",
        required: &["method", "url"],
        optional: &["headers", "query", "body"],
        one_of: &[],
    },
    Builtin {
        name: "wait",
        required: &[],
        optional: &["duration", "until"],
        one_of: &["duration", "until"],
    },
    Builtin {
        name: "playbook.run",
        required: &["playbook"],
        optional: &["inputs"],
        one_of: &[],
    },
    Builtin {
        name: "acknowledgement",
        required: &["message", "timeout"],
        optional: &["roles", "users", "escalate_to", "check"],
        one_of: &[],
    },
    Builtin {
        name: "noop",
        required: &[],
        optional: &["value"],
        one_of: &[],
    },
];

/// The built-in called `name`.
pub fn find(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// Whether a built-in step changes something outside Tocsin and so needs approval:
/// `http.request` with any method but GET (a literal method; a templated one counts too).
pub fn is_containment(name: &str, method: Option<&str>) -> bool {
    name == "http.request" && !method.is_some_and(|m| m.eq_ignore_ascii_case("GET"))
}
