//! The step graph of a playbook as inline SVG, rendered on the server (no script, so it
//! shows without JavaScript and under the strict CSP: colours are presentation
//! attributes, not inline styles). Steps sit in rows by depth (a step one row below the
//! deepest step it waits for), in file order within a row. With a run, each step shows its
//! status, and the steps the run reached and the edges between them are drawn as the
//! taken path; status is written in text too, so colour is never the only signal. Each
//! step is a link to its details below the figure, so keyboard users can reach them.

use crate::playbooks::definition::Playbook;
use crate::playbooks::engine::graph::Graph;
use std::collections::HashMap;
use std::fmt::Write;

const NODE_W: usize = 200;
const NODE_H: usize = 46;
const GAP_X: usize = 28;
const ROW_H: usize = 86;
const PAD: usize = 12;
/// Longest step id, and second line, shown whole; longer ones are cut with an ellipsis
/// (the full text is in the node's tooltip and the step list).
const MAX_LABEL: usize = 24;
const MAX_SECOND: usize = 32;

/// Whether a step in `status` was reached by the run (it ran, runs, or waits).
pub fn reached(status: &str) -> bool {
    !matches!(status, "not_started" | "pending" | "skipped")
}

/// Fill and stroke for a status.
fn colours(status: Option<&str>) -> (&'static str, &'static str) {
    match status {
        Some("succeeded") => ("#dcfce7", "#1a7f37"),
        Some("failed" | "rejected") => ("#fee2e2", "#b3261e"),
        Some("running" | "retrying") => ("#dbeafe", "#1f6feb"),
        Some("waiting" | "waiting_approval") => ("#fef3c7", "#b45309"),
        Some("cancelled") => ("#e5e7eb", "#5a6472"),
        Some(_) => ("#ffffff", "#9aa3ae"),
        None => ("#ffffff", "#5a6472"),
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// Each step's row: 0 for steps that wait for nothing, else one below its deepest
/// dependency. Validation refuses cycles; a cycle here would only stop deepening.
fn rows(graph: &Graph) -> Vec<usize> {
    fn depth(g: &Graph, i: usize, memo: &mut Vec<Option<usize>>, guard: &mut Vec<bool>) -> usize {
        if let Some(d) = memo[i] {
            return d;
        }
        if std::mem::replace(&mut guard[i], true) {
            return 0;
        }
        let d = g
            .deps(i)
            .iter()
            .map(|&p| depth(g, p, memo, guard) + 1)
            .max()
            .unwrap_or(0);
        memo[i] = Some(d);
        d
    }
    let mut memo = vec![None; graph.len()];
    let mut guard = vec![false; graph.len()];
    (0..graph.len())
        .map(|i| depth(graph, i, &mut memo, &mut guard))
        .collect()
}

/// The SVG of `pb`'s steps; `status` maps step ids to the run's statuses (`None`: the
/// definition alone, nothing highlighted). `caption` names the figure for screen readers.
pub fn render(pb: &Playbook, status: Option<&HashMap<String, String>>, caption: &str) -> String {
    let graph = Graph::new(pb);
    let n = graph.len();
    let rows = rows(&graph);
    let row_count = rows.iter().max().map_or(0, |r| r + 1);
    let mut per_row: Vec<Vec<usize>> = vec![Vec::new(); row_count];
    for (i, r) in rows.iter().enumerate() {
        per_row[*r].push(i);
    }
    let widest = per_row.iter().map(Vec::len).max().unwrap_or(0);
    let width = PAD * 2 + widest * NODE_W + widest.saturating_sub(1) * GAP_X;
    let height = PAD * 2 + row_count * ROW_H - (ROW_H - NODE_H).min(row_count * ROW_H);
    // Node positions (top-left), each row centred.
    let mut pos = vec![(0usize, 0usize); n];
    for (r, members) in per_row.iter().enumerate() {
        let row_w = members.len() * NODE_W + members.len().saturating_sub(1) * GAP_X;
        let left = PAD + (width - PAD * 2 - row_w) / 2;
        for (k, &i) in members.iter().enumerate() {
            pos[i] = (left + k * (NODE_W + GAP_X), PAD + r * ROW_H);
        }
    }
    let status_of = |i: usize| -> Option<&str> {
        let id = &pb.steps.get(i)?.id;
        status.map(|m| m.get(id).map_or("not_started", String::as_str))
    };
    let on_path = |i: usize| status_of(i).is_some_and(reached);

    let path: Vec<&str> = (0..n)
        .filter(|&i| on_path(i))
        .filter_map(|i| pb.steps.get(i).map(|s| s.id.as_str()))
        .collect();
    let desc = match status {
        None => format!("{n} steps; arrows point from a step to the steps that wait for it."),
        Some(_) if path.is_empty() => "The run has not reached any step yet.".to_string(),
        Some(_) => format!("Steps the run reached: {}.", path.join(", ")),
    };

    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg class="step-graph" xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="graph-title graph-desc" viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="system-ui, sans-serif">"##
    );
    let _ = write!(
        svg,
        r#"<title id="graph-title">{}</title><desc id="graph-desc">{}</desc>"#,
        escape(caption),
        escape(&desc)
    );
    svg.push_str(concat!(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#9aa3ae"/></marker>"##,
        r##"<marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#1d232b"/></marker></defs>"##
    ));
    for i in 0..n {
        for &d in graph.deps(i) {
            let (fx, fy) = pos[d];
            let (tx, ty) = pos[i];
            let (x1, y1) = (fx + NODE_W / 2, fy + NODE_H);
            let (x2, y2) = (tx + NODE_W / 2, ty);
            let mid = (y1 + y2) / 2;
            let taken = on_path(d) && on_path(i);
            let (class, stroke, w, dash, marker) = if taken {
                ("edge taken", "#1d232b", "2.5", "", "arrow-taken")
            } else {
                (
                    "edge",
                    "#9aa3ae",
                    "1.5",
                    r#" stroke-dasharray="5 4""#,
                    "arrow",
                )
            };
            let from = pb.steps.get(d).map_or("", |s| s.id.as_str());
            let to = pb.steps.get(i).map_or("", |s| s.id.as_str());
            let _ = write!(
                svg,
                r#"<path class="{class}" data-from="{}" data-to="{}" d="M{x1},{y1} C{x1},{mid} {x2},{mid} {x2},{y2}" fill="none" stroke="{stroke}" stroke-width="{w}"{dash} marker-end="url(#{marker})"/>"#,
                escape(from),
                escape(to)
            );
        }
    }
    for (i, step) in pb.steps.iter().enumerate() {
        let (x, y) = pos[i];
        let st = status_of(i);
        let (fill, stroke) = colours(st);
        let taken = on_path(i);
        let class = if taken { "node taken" } else { "node" };
        let width = if taken { "2.5" } else { "1.5" };
        let dash = match st {
            Some("not_started" | "skipped" | "pending") => r#" stroke-dasharray="5 4""#,
            _ => "",
        };
        let gate = if step.approval.is_some() {
            " · gated"
        } else {
            ""
        };
        let second = match st {
            Some(s) => s.replace('_', " "),
            None => step.uses.clone(),
        };
        // The gate mark matters more than the end of a long action name.
        let second = cut(&second, MAX_SECOND - gate.chars().count()) + gate;
        let _ = write!(
            svg,
            r##"<a href="#step-{id}"><g class="{class}" data-step="{id}" data-status="{status}"><title>{id} ({uses}){tip}</title><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{width}"{dash}/><text x="{tx}" y="{ty1}" text-anchor="middle" font-size="13" font-weight="600" fill="#1d232b">{label}</text><text x="{tx}" y="{ty2}" text-anchor="middle" font-size="11" fill="#3d4652">{second}</text></g></a>"##,
            id = escape(&step.id),
            status = escape(st.unwrap_or("")),
            uses = escape(&step.uses),
            tip = st.map(|s| format!(": {}", escape(s))).unwrap_or_default(),
            label = escape(&cut(&step.id, MAX_LABEL)),
            second = escape(&second),
            tx = x + NODE_W / 2,
            ty1 = y + 19,
            ty2 = y + 36,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playbook() -> Playbook {
        serde_norway::from_str(
            r#"
id: p
version: 1
trigger: { on: manual }
steps:
  - { id: a, uses: noop }
  - { id: b, uses: noop }
  - { id: c, uses: noop, needs: [a] }
  - { id: d, uses: noop, needs: [b, c] }
  - { id: "e<x>", uses: noop, if: "$.inputs.never" }
"#,
        )
        .unwrap()
    }

    #[test]
    fn rows_follow_the_deepest_dependency() {
        let g = Graph::new(&playbook());
        assert_eq!(rows(&g), vec![0, 1, 1, 2, 3]);
    }

    #[test]
    fn the_taken_path_is_marked_and_text_is_escaped() {
        let status: HashMap<String, String> = [
            ("a", "succeeded"),
            ("b", "succeeded"),
            ("c", "skipped"),
            ("d", "running"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let svg = render(&playbook(), Some(&status), "Run 1");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains(r#"<g class="node taken" data-step="a" data-status="succeeded">"#));
        assert!(svg.contains(r#"<g class="node" data-step="c" data-status="skipped">"#));
        assert!(svg.contains(r#"data-step="e&lt;x&gt;" data-status="not_started""#));
        assert!(svg.contains(r#"class="edge taken" data-from="a" data-to="b""#));
        assert!(svg.contains(r#"class="edge taken" data-from="b" data-to="d""#));
        assert!(svg.contains(r#"class="edge" data-from="c" data-to="d""#));
        assert!(svg.contains("Steps the run reached: a, b, d."));
        assert!(!svg.contains("<x>"));
    }

    #[test]
    fn without_a_run_nothing_is_taken() {
        let svg = render(&playbook(), None, "Playbook p");
        assert!(!svg.contains("class=\"node taken\""));
        assert!(!svg.contains("class=\"edge taken\""));
        assert!(svg.contains("5 steps"));
    }
}

#[cfg(test)]
mod shipped {
    use super::*;
    use crate::playbooks::library;
    use crate::playbooks::validate::Policy;
    use std::path::Path;

    #[test]
    fn every_shipped_playbook_draws_every_step_and_edge() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let lib = library::load(
            &root.join("playbooks"),
            &root.join("integrations"),
            Policy::default(),
        )
        .expect("shipped content loads");
        assert!(!lib.playbooks.is_empty());
        for (id, (pb, _)) in &lib.playbooks {
            let svg = render(pb, None, id);
            let graph = Graph::new(pb);
            let edges: usize = (0..graph.len()).map(|i| graph.deps(i).len()).sum();
            assert_eq!(
                svg.matches("<g class=\"node\"").count(),
                pb.steps.len(),
                "{id}"
            );
            assert_eq!(svg.matches("class=\"edge\"").count(), edges, "{id}");
            if let Ok(dir) = std::env::var("TOCSIN_GRAPH_DIR") {
                std::fs::write(Path::new(&dir).join(format!("{id}.svg")), &svg).unwrap();
            }
        }
    }
}
