//! Server-rendered SVG charts for the dashboard: no script, no chart library. Each chart
//! is an `img` to assistive technology with a title and a one-sentence description;
//! the page puts the same numbers in a table beside it. Every bar carries its numbers
//! in `data-` attributes and a `<title>` tooltip.

use std::fmt::Write;

/// Escapes text for SVG (XML) content and attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const PALETTE: [&str; 8] = [
    "#1f6feb", "#d97706", "#059669", "#b3261e", "#7c3aed", "#0891b2", "#be185d", "#6b7280",
];

/// The colour of a series: fixed for severities, statuses and outcomes (so the same
/// thing looks the same on every chart), from a palette by position otherwise.
pub fn colour(key: &str, index: usize) -> &'static str {
    match key {
        "Unknown" | "other" | "(none)" | "cancelled" => "#9ca3af",
        "Informational" => "#93c5fd",
        "Low" => "#3b82f6",
        "Medium" => "#f59e0b",
        "High" => "#ea580c",
        "Critical" => "#dc2626",
        "Fatal" => "#7f1d1d",
        "new" => "#dc2626",
        "triage" => "#f59e0b",
        "in_progress" => "#3b82f6",
        "contained" => "#7c3aed",
        "resolved" | "succeeded" => "#16a34a",
        "closed" => "#6b7280",
        "failed" => "#b3261e",
        _ => PALETTE[index % PALETTE.len()],
    }
}

/// A short axis label for a bucket: the hour of an hourly bucket, month-day of a day.
fn short(label: &str) -> &str {
    match label.len() {
        16 => &label[11..],
        10 => &label[5..],
        _ => label,
    }
}

/// Columns over time, one per bucket, stacked by series. `counts[k][b]` is series `k`
/// in bucket `b`.
pub fn stacked_columns(
    id: &str,
    title: &str,
    buckets: &[String],
    keys: &[String],
    counts: &[Vec<i64>],
) -> String {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const RIGHT: f64 = 8.0;
    const TOP: f64 = 10.0;
    const BOTTOM: f64 = 28.0;
    let n = buckets.len().max(1);
    let totals: Vec<i64> = (0..buckets.len())
        .map(|b| counts.iter().map(|c| c.get(b).copied().unwrap_or(0)).sum())
        .collect();
    let total: i64 = totals.iter().sum();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.72).max(1.0);
    let y = |v: f64| TOP + plot_h - v / max as f64 * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t {id}-d" id="{id}" class="chart-svg"><title id="{id}-t">{t}</title><desc id="{id}-d">{d}</desc>"#,
        id = esc(id),
        t = esc(title),
        d = esc(&format!(
            "{total} in all over {} periods; at most {max} in one period. The table below the chart has every figure.",
            buckets.len()
        )),
    );
    // Gridlines at zero, half and the maximum.
    let mut marks = vec![0, max];
    if max >= 2 {
        marks.push(max / 2);
    }
    for m in marks {
        let gy = y(m as f64);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{gy:.1}" y2="{gy:.1}" stroke="#d7dce2"/><text x="{tx}" y="{ty:.1}" font-size="11" text-anchor="end" fill="#5a6472">{m}</text>"##,
            x2 = W - RIGHT,
            tx = LEFT - 4.0,
            ty = gy + 4.0,
        );
    }
    let every = n.div_ceil(8);
    for (b, label) in buckets.iter().enumerate() {
        let x = LEFT + slot * b as f64 + (slot - bar_w) / 2.0;
        let mut base = 0i64;
        for (k, key) in keys.iter().enumerate() {
            let v = counts.get(k).and_then(|c| c.get(b)).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let top = y((base + v) as f64);
            let height = y(base as f64) - top;
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{bar_w:.1}" height="{height:.1}" fill="{fill}" data-bucket="{bucket}" data-series="{series}" data-count="{v}"><title>{bucket} · {series}: {v}</title></rect>"#,
                fill = colour(key, k),
                bucket = esc(label),
                series = esc(key),
            );
            base += v;
        }
        if b % every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{tx:.1}" y="{ty}" font-size="11" text-anchor="middle" fill="#5a6472">{l}</text>"##,
                tx = LEFT + slot * b as f64 + slot / 2.0,
                ty = H - 10.0,
                l = esc(short(label)),
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One row of a horizontal bar chart: a label and stacked (series, value) segments.
pub struct BarRow {
    pub label: String,
    pub segments: Vec<(String, f64)>,
    /// What is printed after the bar.
    pub note: String,
}

/// Horizontal bars, one row each, stacked by series.
pub fn horizontal_bars(id: &str, title: &str, summary: &str, rows: &[BarRow]) -> String {
    const W: f64 = 640.0;
    const LABEL: f64 = 200.0;
    const NOTE: f64 = 110.0;
    const ROW: f64 = 26.0;
    let h = ROW * rows.len().max(1) as f64 + 8.0;
    let max = rows
        .iter()
        .map(|r| r.segments.iter().map(|(_, v)| v).sum::<f64>())
        .fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let plot_w = W - LABEL - NOTE;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" role="img" aria-labelledby="{id}-t {id}-d" id="{id}" class="chart-svg"><title id="{id}-t">{t}</title><desc id="{id}-d">{d}</desc>"#,
        id = esc(id),
        t = esc(title),
        d = esc(summary),
    );
    for (i, row) in rows.iter().enumerate() {
        let top = 4.0 + ROW * i as f64;
        let label: String = if row.label.chars().count() > 30 {
            row.label.chars().take(29).chain(['…']).collect()
        } else {
            row.label.clone()
        };
        let _ = write!(
            svg,
            r##"<text x="{lx}" y="{ty:.1}" font-size="12" text-anchor="end" fill="#1d232b">{l}</text>"##,
            lx = LABEL - 6.0,
            ty = top + 15.0,
            l = esc(&label),
        );
        let mut x = LABEL;
        for (k, (series, v)) in row.segments.iter().enumerate() {
            if *v <= 0.0 {
                continue;
            }
            let w = v / max * plot_w;
            let _ = write!(
                svg,
                r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{w:.1}" height="18" fill="{fill}" data-label="{label}" data-series="{series}" data-value="{v}"><title>{label} · {series}: {v}</title></rect>"#,
                fill = colour(series, k),
                label = esc(&row.label),
                series = esc(series),
            );
            x += w;
        }
        let _ = write!(
            svg,
            r##"<text x="{nx:.1}" y="{ty:.1}" font-size="12" fill="#5a6472">{note}</text>"##,
            nx = x + 6.0,
            ty = top + 15.0,
            note = esc(&row.note),
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_stack_and_escape() {
        let svg = stacked_columns(
            "c",
            "Cases <by> severity",
            &["2026-12-01".into(), "2026-12-02".into()],
            &["Low".into(), "<x>".into()],
            &[vec![1, 0], vec![2, 3]],
        );
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
        assert!(
            svg.contains("data-series=\"&lt;x&gt;\" data-count=\"3\""),
            "{svg}"
        );
        assert!(svg.contains("Cases &lt;by&gt; severity"));
        assert!(!svg.contains("<x>"));
        assert!(svg.contains("6 in all over 2 periods; at most 3"), "{svg}");
    }

    #[test]
    fn bars_scale_to_the_longest_row() {
        let rows = vec![
            BarRow {
                label: "a".into(),
                segments: vec![("succeeded".into(), 3.0), ("failed".into(), 1.0)],
                note: "75%".into(),
            },
            BarRow {
                label: "b".into(),
                segments: vec![("succeeded".into(), 2.0)],
                note: "100%".into(),
            },
        ];
        let svg = horizontal_bars("p", "Playbooks", "two", &rows);
        assert_eq!(svg.matches("class=\"bar\"").count(), 3);
        assert!(
            svg.contains("width=\"247.5\"") && svg.contains("width=\"82.5\""),
            "{svg}"
        );
        assert!(svg.contains("data-label=\"a\" data-series=\"failed\" data-value=\"1\""));
    }
}
