//! The figures behind the console's dashboard: MTTA and MTTR, cases over time by
//! severity, source and status, playbook outcomes, the slowest steps and pending
//! approvals. Every figure is aggregated by the database over a bounded window (each
//! query a range scan on an indexed time column), so the page costs the same on a table
//! of ten cases as on ten million.
//!
//! Definitions (the README repeats them):
//! - **MTTA** (mean time to acknowledge): the mean of `acknowledged_at − created_at` over
//!   cases acknowledged inside the window. `acknowledged_at` is stamped by a case's first
//!   move out of `new` (an analyst, the API or a playbook's `case.set`).
//! - **MTTR** (mean time to resolve): the mean of `resolved_at − created_at` over cases
//!   resolved inside the window; `resolved_at` is stamped when a case becomes `resolved`
//!   or `closed`. Reopening a case clears both stamps.
//!
//! Cases merged into another are left out everywhere: they are duplicates of the case
//! that absorbed them.

use crate::db::schema::approval_gates;
use crate::db::{DbConn, DbError};
use crate::on_backend;
use chrono::{Duration, NaiveDateTime, Timelike};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use serde::Serialize;
use std::collections::HashMap;

/// The time windows the dashboard offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Range {
    Day,
    Week,
    Month,
}

/// A range name that is not one of the three.
#[derive(Debug, thiserror::Error)]
#[error("unknown range {0:?}: expected 24h, 7d or 30d")]
pub struct UnknownRange(pub String);

impl std::str::FromStr for Range {
    type Err = UnknownRange;

    fn from_str(s: &str) -> Result<Range, UnknownRange> {
        match s {
            "24h" => Ok(Range::Day),
            "7d" => Ok(Range::Week),
            "30d" => Ok(Range::Month),
            other => Err(UnknownRange(other.to_string())),
        }
    }
}

impl Range {
    /// The name used in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    /// Hourly buckets for a day, daily ones otherwise.
    fn hourly(self) -> bool {
        self == Range::Day
    }

    fn buckets(self) -> i64 {
        match self {
            Range::Day => 24,
            Range::Week => 7,
            Range::Month => 30,
        }
    }

    /// The first instant of the window ending at `now`: whole buckets, the last one
    /// holding `now`.
    pub fn start(self, now: NaiveDateTime) -> NaiveDateTime {
        let hour = now
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now);
        if self.hourly() {
            hour - Duration::hours(self.buckets() - 1)
        } else {
            let day = hour.with_hour(0).unwrap_or(hour);
            day - Duration::days(self.buckets() - 1)
        }
    }

    /// The bucket labels, oldest first, as the SQL below formats them.
    pub fn labels(self, now: NaiveDateTime) -> Vec<String> {
        let start = self.start(now);
        (0..self.buckets())
            .map(|i| {
                if self.hourly() {
                    (start + Duration::hours(i))
                        .format("%Y-%m-%d %H:00")
                        .to_string()
                } else {
                    (start + Duration::days(i)).format("%Y-%m-%d").to_string()
                }
            })
            .collect()
    }
}

/// A mean duration and how many cases it is over.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mean {
    pub cases: i64,
    /// Whole seconds; `None` when no case counts.
    pub seconds: Option<i64>,
}

/// Counts per bucket for each key (a severity, a source, a status), keys in display order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Series {
    pub keys: Vec<String>,
    /// `counts[k][b]`: cases of key `k` in bucket `b`.
    pub counts: Vec<Vec<i64>>,
}

/// How one playbook's finished runs ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlaybookOutcomes {
    pub playbook: String,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// Succeeded out of all finished runs, in percent.
    pub success_rate: f64,
}

/// A step's timing over the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepTiming {
    pub playbook: String,
    pub step: String,
    pub runs: i64,
    pub avg_seconds: f64,
    pub max_seconds: f64,
}

/// A gate still waiting for a decision.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PendingGate {
    pub id: i64,
    pub action: String,
    pub case_id: Option<i64>,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub deadline_at: NaiveDateTime,
    pub age_seconds: i64,
}

/// Pending approvals now, whatever the window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pending {
    pub total: i64,
    /// (label, count) by age: under 15 minutes, under an hour, under 4 hours, under a
    /// day, older.
    pub by_age: Vec<(String, i64)>,
    /// The ten oldest.
    pub oldest: Vec<PendingGate>,
}

/// Everything the dashboard shows for one window.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub range: &'static str,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub since: NaiveDateTime,
    #[serde(serialize_with = "crate::db::utc::serialize")]
    pub now: NaiveDateTime,
    pub buckets: Vec<String>,
    pub created: i64,
    pub open_now: i64,
    pub mtta: Mean,
    pub mttr: Mean,
    pub by_severity: Series,
    pub by_source: Series,
    pub by_status: Series,
    pub playbooks: Vec<PlaybookOutcomes>,
    pub slowest_steps: Vec<StepTiming>,
    pub pending: Pending,
}

/// Most sources drawn separately; the rest are summed as "other".
const TOP_SOURCES: usize = 6;
/// Case statuses in the order of the status model.
const STATUSES: [&str; 6] = [
    "new",
    "triage",
    "in_progress",
    "contained",
    "resolved",
    "closed",
];

/// The two SQL dialects' spellings of what differs.
#[derive(Clone, Copy)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn of(conn: &DbConn) -> Dialect {
        match conn {
            DbConn::Sqlite(_) => Dialect::Sqlite,
            DbConn::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Bind placeholder number `n` (1-based).
    fn p(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => "?".into(),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// Seconds from `from` to `to`, as a double.
    fn secs(self, to: &str, from: &str) -> String {
        match self {
            Dialect::Sqlite => format!("((julianday({to}) - julianday({from})) * 86400.0)"),
            Dialect::Postgres => format!("(EXTRACT(EPOCH FROM ({to} - {from}))::float8)"),
        }
    }

    /// The bucket label of a timestamp column, matching [`Range::labels`].
    fn bucket(self, col: &str, hourly: bool) -> String {
        match (self, hourly) {
            (Dialect::Sqlite, true) => format!("strftime('%Y-%m-%d %H:00', {col})"),
            (Dialect::Sqlite, false) => format!("strftime('%Y-%m-%d', {col})"),
            (Dialect::Postgres, true) => format!("to_char({col}, 'YYYY-MM-DD HH24:00')"),
            (Dialect::Postgres, false) => format!("to_char({col}, 'YYYY-MM-DD')"),
        }
    }
}

#[derive(QueryableByName)]
struct MeanRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    avg: Option<f64>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Cases of one key in one bucket.
struct BucketRow {
    bucket: String,
    key: String,
    n: i64,
}

#[derive(QueryableByName)]
struct OutcomeRow {
    #[diesel(sql_type = Text)]
    playbook: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct StepRow {
    #[diesel(sql_type = Text)]
    playbook: String,
    #[diesel(sql_type = Text)]
    step: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    avg: f64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    max: f64,
}

/// Runs `sql` with every placeholder bound to `at`.
fn load_at<R>(conn: &mut DbConn, sql: &str, at: &[NaiveDateTime]) -> Result<Vec<R>, DbError>
where
    R: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
{
    let rows = on_backend!(conn, |c| {
        let mut q = diesel::sql_query(sql).into_boxed();
        for t in at {
            q = q.bind::<Timestamp, _>(*t);
        }
        q.load::<R>(c)
    })?;
    Ok(rows)
}

fn mean(conn: &mut DbConn, d: Dialect, stamp: &str, since: NaiveDateTime) -> Result<Mean, DbError> {
    let sql = format!(
        "SELECT COUNT(*) AS n, AVG({secs}) AS avg FROM cases \
         WHERE {stamp} >= {p} AND merged_into_id IS NULL",
        secs = d.secs(stamp, "created_at"),
        p = d.p(1),
    );
    let row = load_at::<MeanRow>(conn, &sql, &[since])?;
    let (n, avg) = row.first().map_or((0, None), |r| (r.n, r.avg));
    Ok(Mean {
        cases: n,
        seconds: avg.map(|a| a.round() as i64),
    })
}

fn count(conn: &mut DbConn, sql: &str, at: &[NaiveDateTime]) -> Result<i64, DbError> {
    Ok(load_at::<CountRow>(conn, sql, at)?
        .first()
        .map_or(0, |r| r.n))
}

#[derive(QueryableByName)]
struct CaseCell {
    #[diesel(sql_type = Text)]
    bucket: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    severity: i32,
    #[diesel(sql_type = Text)]
    source: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Cases created in the window, counted per bucket, severity, source and status in one
/// pass over the window (the three charts are sums of these cells).
fn case_cells(
    conn: &mut DbConn,
    d: Dialect,
    range: Range,
    since: NaiveDateTime,
) -> Result<Vec<CaseCell>, DbError> {
    let sql = format!(
        "SELECT {bucket} AS bucket, c.severity AS severity, COALESCE(s.name, '(none)') AS source, \
         c.status AS status, COUNT(*) AS n \
         FROM cases c LEFT JOIN sources s ON s.id = c.source_id \
         WHERE c.created_at >= {p} AND c.merged_into_id IS NULL GROUP BY 1, 2, 3, 4",
        bucket = d.bucket("c.created_at", range.hourly()),
        p = d.p(1),
    );
    load_at(conn, &sql, &[since])
}

/// The cells summed by one of their keys.
fn by_key(cells: &[CaseCell], key: impl Fn(&CaseCell) -> String) -> Vec<BucketRow> {
    cells
        .iter()
        .map(|c| BucketRow {
            bucket: c.bucket.clone(),
            key: key(c),
            n: c.n,
        })
        .collect()
}

/// Arranges rows into a series over `labels`, keys in `order` (others after, by count).
fn series(rows: Vec<BucketRow>, labels: &[String], order: &[String]) -> Series {
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let mut keys: Vec<String> = order.to_vec();
    let mut counts: Vec<Vec<i64>> = vec![vec![0; labels.len()]; keys.len()];
    for row in rows {
        let Some(&b) = index.get(row.bucket.as_str()) else {
            continue;
        };
        let k = match keys.iter().position(|k| *k == row.key) {
            Some(k) => k,
            None => {
                keys.push(row.key);
                counts.push(vec![0; labels.len()]);
                keys.len() - 1
            }
        };
        counts[k][b] += row.n;
    }
    // Keys with nothing in the window are left out of the legend.
    let (keys, counts) = keys
        .into_iter()
        .zip(counts)
        .filter(|(_, c)| c.iter().any(|n| *n > 0))
        .unzip();
    Series { keys, counts }
}

/// Keeps the `top` keys with the most cases and sums the rest as "other".
fn top_keys(series: Series, top: usize) -> Series {
    let mut pairs: Vec<(String, Vec<i64>)> = series.keys.into_iter().zip(series.counts).collect();
    pairs.sort_by_key(|(k, c)| (-c.iter().sum::<i64>(), k.clone()));
    if pairs.len() > top + 1 {
        let rest = pairs.split_off(top);
        let mut other = vec![0; rest.first().map_or(0, |(_, c)| c.len())];
        for (_, c) in rest {
            for (o, n) in other.iter_mut().zip(c) {
                *o += n;
            }
        }
        pairs.push(("other".into(), other));
    }
    let (keys, counts) = pairs.into_iter().unzip();
    Series { keys, counts }
}

/// Computes the dashboard for the window of `range` ending at `now`.
pub fn compute(conn: &mut DbConn, range: Range, now: NaiveDateTime) -> Result<Dashboard, DbError> {
    let d = Dialect::of(conn);
    let since = range.start(now);
    let labels = range.labels(now);

    let mtta = mean(conn, d, "acknowledged_at", since)?;
    let mttr = mean(conn, d, "resolved_at", since)?;
    let created = count(
        conn,
        &format!(
            "SELECT COUNT(*) AS n FROM cases WHERE created_at >= {} AND merged_into_id IS NULL",
            d.p(1)
        ),
        &[since],
    )?;
    let open_now = count(
        conn,
        // Open statuses named (not "NOT IN closed ones") so the count is read from the
        // status index alone; merged cases are closed, so they are not counted.
        "SELECT COUNT(*) AS n FROM cases WHERE status IN ('new', 'triage', 'in_progress', \
         'contained')",
        &[],
    )?;

    let severity_order: Vec<String> = crate::alert::Severity::ALL
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    let cells = case_cells(conn, d, range, since)?;
    let by_severity = series(
        by_key(&cells, |c| {
            crate::alert::Severity::from_id(i64::from(c.severity))
                .name()
                .to_string()
        }),
        &labels,
        &severity_order,
    );
    let by_source = top_keys(
        series(by_key(&cells, |c| c.source.clone()), &labels, &[]),
        TOP_SOURCES,
    );
    let status_order: Vec<String> = STATUSES.iter().map(|s| s.to_string()).collect();
    let rows = by_key(&cells, |c| c.status.clone());
    let by_status = series(rows, &labels, &status_order);

    let playbooks = outcomes(conn, d, since)?;
    let slowest_steps = slowest(conn, d, since)?;
    let pending = pending(conn, d, now)?;

    Ok(Dashboard {
        range: range.as_str(),
        since,
        now,
        buckets: labels,
        created,
        open_now,
        mtta,
        mttr,
        by_severity,
        by_source,
        by_status,
        playbooks,
        slowest_steps,
        pending,
    })
}

/// Runs that finished in the window, by playbook and outcome; busiest playbooks first.
fn outcomes(
    conn: &mut DbConn,
    d: Dialect,
    since: NaiveDateTime,
) -> Result<Vec<PlaybookOutcomes>, DbError> {
    let sql = format!(
        "SELECT playbook_id AS playbook, status, COUNT(*) AS n FROM playbook_runs \
         WHERE finished_at >= {} AND status IN ('succeeded', 'failed', 'cancelled') \
         GROUP BY 1, 2",
        d.p(1)
    );
    let mut by: Vec<PlaybookOutcomes> = Vec::new();
    for row in load_at::<OutcomeRow>(conn, &sql, &[since])? {
        let i = match by.iter().position(|p| p.playbook == row.playbook) {
            Some(i) => i,
            None => {
                by.push(PlaybookOutcomes {
                    playbook: row.playbook.clone(),
                    succeeded: 0,
                    failed: 0,
                    cancelled: 0,
                    success_rate: 0.0,
                });
                by.len() - 1
            }
        };
        match row.status.as_str() {
            "succeeded" => by[i].succeeded += row.n,
            "failed" => by[i].failed += row.n,
            _ => by[i].cancelled += row.n,
        }
    }
    for p in &mut by {
        let total = p.succeeded + p.failed + p.cancelled;
        p.success_rate = if total > 0 {
            (p.succeeded as f64 * 1000.0 / total as f64).round() / 10.0
        } else {
            0.0
        };
    }
    by.sort_by_key(|p| (-(p.succeeded + p.failed + p.cancelled), p.playbook.clone()));
    by.truncate(12);
    Ok(by)
}

/// The ten steps with the longest mean duration among those that finished in the window
/// (waits and approval gates included: that is time a case waited too).
fn slowest(
    conn: &mut DbConn,
    d: Dialect,
    since: NaiveDateTime,
) -> Result<Vec<StepTiming>, DbError> {
    let secs = d.secs("s.finished_at", "s.started_at");
    let sql = format!(
        "SELECT r.playbook_id AS playbook, s.step_id AS step, COUNT(*) AS n, \
         AVG({secs}) AS avg, MAX({secs}) AS max \
         FROM step_runs s JOIN playbook_runs r ON r.id = s.run_id \
         WHERE s.finished_at >= {p} AND s.started_at IS NOT NULL \
         GROUP BY 1, 2 ORDER BY 4 DESC, 1, 2 LIMIT 10",
        p = d.p(1)
    );
    Ok(load_at::<StepRow>(conn, &sql, &[since])?
        .into_iter()
        .map(|r| StepTiming {
            playbook: r.playbook,
            step: r.step,
            runs: r.n,
            avg_seconds: (r.avg * 1000.0).round() / 1000.0,
            max_seconds: (r.max * 1000.0).round() / 1000.0,
        })
        .collect())
}

/// Age limits of the pending-approval buckets, in seconds, and their labels.
const AGES: [(i64, &str); 4] = [
    (15 * 60, "under 15m"),
    (3600, "15m–1h"),
    (4 * 3600, "1h–4h"),
    (86_400, "4h–1d"),
];

fn pending(conn: &mut DbConn, d: Dialect, now: NaiveDateTime) -> Result<Pending, DbError> {
    // One pass: how many pending gates are younger than each limit.
    let mut cols = vec!["COUNT(*) AS n".to_string()];
    for (i, _) in AGES.iter().enumerate() {
        cols.push(format!(
            "COALESCE(SUM(CASE WHEN created_at >= {} THEN 1 ELSE 0 END), 0) AS a{i}",
            d.p(i + 1)
        ));
    }
    let sql = format!(
        "SELECT {} FROM approval_gates WHERE status = 'pending'",
        cols.join(", ")
    );
    #[derive(QueryableByName)]
    struct AgeRow {
        #[diesel(sql_type = BigInt)]
        n: i64,
        #[diesel(sql_type = BigInt)]
        a0: i64,
        #[diesel(sql_type = BigInt)]
        a1: i64,
        #[diesel(sql_type = BigInt)]
        a2: i64,
        #[diesel(sql_type = BigInt)]
        a3: i64,
    }
    let limits: Vec<NaiveDateTime> = AGES
        .iter()
        .map(|(s, _)| now - Duration::seconds(*s))
        .collect();
    let row = load_at::<AgeRow>(conn, &sql, &limits)?;
    let (total, under) = row
        .first()
        .map_or((0, [0; 4]), |r| (r.n, [r.a0, r.a1, r.a2, r.a3]));
    let mut by_age = Vec::new();
    let mut below = 0;
    for (i, (_, label)) in AGES.iter().enumerate() {
        by_age.push((label.to_string(), under[i] - below));
        below = under[i];
    }
    by_age.push(("over 1d".to_string(), total - below));

    let oldest = approval_gates::table
        .filter(approval_gates::status.eq("pending"))
        .order((approval_gates::created_at.asc(), approval_gates::id.asc()))
        .limit(10)
        .select((
            approval_gates::id,
            approval_gates::action,
            approval_gates::case_id,
            approval_gates::created_at,
            approval_gates::deadline_at,
        ))
        .load::<(i64, String, Option<i64>, NaiveDateTime, NaiveDateTime)>(conn)?
        .into_iter()
        .map(
            |(id, action, case_id, created_at, deadline_at)| PendingGate {
                id,
                action,
                case_id,
                created_at,
                deadline_at,
                age_seconds: (now - created_at).num_seconds().max(0),
            },
        )
        .collect();
    Ok(Pending {
        total,
        by_age,
        oldest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn windows_are_whole_buckets_ending_now() {
        let now = t("2026-12-02 10:25:00");
        assert_eq!(Range::Day.start(now), t("2026-12-01 11:00:00"));
        assert_eq!(Range::Week.start(now), t("2026-11-26 00:00:00"));
        assert_eq!(Range::Month.start(now), t("2026-11-03 00:00:00"));
        let day = Range::Day.labels(now);
        assert_eq!(day.len(), 24);
        assert_eq!(day[0], "2026-12-01 11:00");
        assert_eq!(day[23], "2026-12-02 10:00");
        assert_eq!(Range::Week.labels(now)[6], "2026-12-02");
        assert!("1y".parse::<Range>().is_err());
    }

    #[test]
    fn series_follow_the_given_order_and_drop_empty_keys() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let row = |bucket: &str, key: &str, n| BucketRow {
            bucket: bucket.into(),
            key: key.into(),
            n,
        };
        let s = series(
            vec![row("b", "High", 2), row("a", "Low", 1), row("zz", "Low", 9)],
            &labels,
            &["Low".into(), "Medium".into(), "High".into()],
        );
        assert_eq!(s.keys, vec!["Low", "High"]);
        assert_eq!(s.counts, vec![vec![1, 0], vec![0, 2]]);
    }

    #[test]
    fn small_sources_are_summed_as_other() {
        let s = Series {
            keys: (0..9).map(|i| format!("s{i}")).collect(),
            counts: (0..9).map(|i| vec![i, 1]).collect(),
        };
        let top = top_keys(s, 6);
        assert_eq!(top.keys.len(), 7);
        assert_eq!(top.keys[0], "s8");
        assert_eq!(top.keys[6], "other");
        // s0, s1, s2 are summed: (0+1+2, 3).
        assert_eq!(top.counts[6], vec![3, 3]);
    }
}
