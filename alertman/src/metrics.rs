//! Alertman's own Prometheus metrics (registered under `drover_alertman_` by the caller).
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// Labels of the notification counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiverLabels {
    /// The receiver's type (`webhook`, `slack`, `email`): bounded, unlike receiver names.
    pub kind: String,
    /// `sent` or `failed`.
    pub outcome: String,
}

/// Labels of the transition counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The new state.
    pub state: String,
}

/// Alertman's counters and gauges.
#[derive(Debug, Clone)]
pub struct AlertmanMetrics {
    /// Evaluations of all rules.
    pub evaluations: Counter,
    /// Seconds per evaluation of all rules.
    pub evaluation_seconds: Histogram,
    /// Rules loaded.
    pub rules: Gauge,
    /// Firing alerts.
    pub firing: Gauge,
    /// Transitions by new state.
    pub transitions: Family<StateLabels, Counter>,
    /// Notifications by receiver type and outcome.
    pub notifications: Family<ReceiverLabels, Counter>,
    /// Delivery attempts that failed (each retry counts).
    pub delivery_failures: Counter,
    /// Annotation templates that failed when rendered (their raw text was sent).
    pub template_errors: Counter,
    /// Rule reloads refused (the running rules were kept).
    pub reload_failures: Counter,
    /// Actions by outcome.
    pub actions: Family<StateLabels, Counter>,
}

impl Default for AlertmanMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AlertmanMetrics {
    /// Unregistered metrics (tests, benchmarks).
    pub fn new() -> Self {
        Self {
            evaluations: Counter::default(),
            evaluation_seconds: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            rules: Gauge::default(),
            firing: Gauge::default(),
            transitions: Family::default(),
            notifications: Family::default(),
            delivery_failures: Counter::default(),
            template_errors: Counter::default(),
            reload_failures: Counter::default(),
            actions: Family::default(),
        }
    }

    /// Creates the metrics and registers them.
    pub fn register(reg: &mut Registry) -> Self {
        let m = Self::new();
        reg.register(
            "evaluations",
            "Evaluations of all rules",
            m.evaluations.clone(),
        );
        reg.register_with_unit(
            "evaluation",
            "Time per evaluation of all rules",
            Unit::Seconds,
            m.evaluation_seconds.clone(),
        );
        reg.register("rules", "Rules loaded", m.rules.clone());
        reg.register("firing_alerts", "Alerts firing", m.firing.clone());
        reg.register(
            "transitions",
            "Alert state transitions by new state",
            m.transitions.clone(),
        );
        reg.register(
            "notifications",
            "Notifications by receiver type and outcome",
            m.notifications.clone(),
        );
        reg.register(
            "delivery_failures",
            "Failed delivery attempts (each retry counts)",
            m.delivery_failures.clone(),
        );
        reg.register(
            "template_errors",
            "Annotation templates that failed at send time (raw text sent)",
            m.template_errors.clone(),
        );
        reg.register(
            "reload_failures",
            "Rule reloads refused (the running rules were kept)",
            m.reload_failures.clone(),
        );
        reg.register("actions", "Actions by outcome", m.actions.clone());
        m
    }
}
