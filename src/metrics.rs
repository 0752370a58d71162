//! Process metrics in the Prometheus text format.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of an HTTP request: the route pattern (not the raw path, to bound cardinality).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

/// Labels naming a route only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// Labels naming an outcome or reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

/// Every metric Tocsin exports.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_duration: Family<RouteLabels, Histogram>,
    pub logins_failed: Counter,
    pub db_pool_connections: Gauge,
    pub db_pool_idle: Gauge,
    /// Alerts committed, by `stored` or `deduplicated`.
    pub ingest_alerts: Family<OutcomeLabels, Counter>,
    /// Ingestion requests refused, by reason.
    pub ingest_refused: Family<OutcomeLabels, Counter>,
    /// The group-commit writer's counters.
    pub writer: crate::ingest::writer::Stats,
    /// The playbook engine's counters.
    pub engine: EngineStats,
}

/// What the playbook engine counts.
#[derive(Debug, Clone)]
pub struct EngineStats {
    /// Runs ended, by final status.
    pub runs_finished: Family<OutcomeLabels, Counter>,
    /// Steps (and `foreach` items) ended, by status.
    pub steps_finished: Family<OutcomeLabels, Counter>,
    /// Seconds from a step's start to its end, retries and waits included.
    pub step_duration: Family<OutcomeLabels, Histogram>,
    /// Runs this process is driving now.
    pub runs_active: Gauge,
}

impl Default for EngineStats {
    fn default() -> Self {
        Self::new()
    }
}

impl EngineStats {
    /// Unregistered counters (the registry registers its own).
    pub fn new() -> EngineStats {
        EngineStats {
            runs_finished: Family::default(),
            steps_finished: Family::default(),
            step_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 4.0, 12))
            }),
            runs_active: Gauge::default(),
        }
    }

    /// Counts an ended run.
    pub fn run_finished(&self, status: &str) {
        self.runs_finished
            .get_or_create(&OutcomeLabels {
                outcome: status.to_string(),
            })
            .inc();
    }

    /// Counts an ended step or item and its duration.
    pub fn step_finished(&self, status: &str, seconds: f64) {
        let labels = OutcomeLabels {
            outcome: status.to_string(),
        };
        self.steps_finished.get_or_create(&labels).inc();
        self.step_duration.get_or_create(&labels).observe(seconds);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `tocsin` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tocsin");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        let http_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            http_duration.clone(),
        );
        let logins_failed = Counter::default();
        registry.register(
            "logins_failed",
            "Refused login attempts",
            logins_failed.clone(),
        );
        let db_pool_connections = Gauge::default();
        registry.register(
            "db_pool_connections",
            "Open database connections in the pool",
            db_pool_connections.clone(),
        );
        let db_pool_idle = Gauge::default();
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections",
            db_pool_idle.clone(),
        );
        let ingest_alerts = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "ingest_alerts",
            "Alerts committed by ingestion",
            ingest_alerts.clone(),
        );
        let ingest_refused = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "ingest_refused",
            "Ingestion requests refused",
            ingest_refused.clone(),
        );
        let writer = crate::ingest::writer::Stats::default();
        registry.register(
            "ingest_commits",
            "Group-commit transactions",
            writer.commits.clone(),
        );
        registry.register(
            "ingest_committed_requests",
            "Ingestion requests answered by group commits",
            writer.requests.clone(),
        );
        let engine = EngineStats::new();
        registry.register(
            "playbook_runs_finished",
            "Playbook runs ended, by status",
            engine.runs_finished.clone(),
        );
        registry.register(
            "playbook_steps_finished",
            "Playbook steps and foreach items ended, by status",
            engine.steps_finished.clone(),
        );
        registry.register(
            "playbook_step_duration_seconds",
            "Time from a step's start to its end, by status",
            engine.step_duration.clone(),
        );
        registry.register(
            "playbook_runs_active",
            "Runs this process is driving",
            engine.runs_active.clone(),
        );
        Metrics {
            engine,
            writer,
            ingest_alerts,
            ingest_refused,
            registry,
            http_requests,
            http_duration,
            logins_failed,
            db_pool_connections,
            db_pool_idle,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.http_requests
            .get_or_create(&RequestLabels {
                method: "GET".into(),
                route: "/healthz".into(),
                status: 200,
            })
            .inc();
        let text = m.render();
        assert!(
            text.contains("# TYPE tocsin_http_requests counter"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"tocsin_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
