//! The autoscaler's own Prometheus metrics (registered under `drover_autoscaler_` by the
//! caller). The `policy` label takes the names of the policies the operator wrote: bounded.
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

/// `policy`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// The policy's name.
    pub policy: String,
}

/// `policy` and `outcome` (`unchanged`, `applied`, `dry_run`, `refused`, `paused`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The policy's name.
    pub policy: String,
    /// What happened.
    pub outcome: &'static str,
}

/// The autoscaler's counters and gauges. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AutoscalerMetrics {
    /// Ticks of all policies.
    pub ticks: Counter,
    /// Seconds per tick of all policies.
    pub tick_seconds: Histogram,
    /// Decisions by policy and outcome.
    pub decisions: Family<OutcomeLabels, Counter>,
    /// Instances asked for, by policy (all groups).
    pub instances: Family<PolicyLabels, Gauge>,
    /// Instances ready, by policy.
    pub ready: Family<PolicyLabels, Gauge>,
    /// Groups, by policy.
    pub groups: Family<PolicyLabels, Gauge>,
    /// 1 while a policy panics.
    pub panic: Family<PolicyLabels, Gauge>,
    /// 1 while a policy is paused (its app is gone).
    pub paused: Family<PolicyLabels, Gauge>,
    /// Policy reloads refused (the running policies were kept).
    pub reload_failures: Counter,
}

impl Default for AutoscalerMetrics {
    fn default() -> Self {
        Self {
            ticks: Counter::default(),
            tick_seconds: Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            decisions: Family::default(),
            instances: Family::default(),
            ready: Family::default(),
            groups: Family::default(),
            panic: Family::default(),
            paused: Family::default(),
            reload_failures: Counter::default(),
        }
    }
}

impl AutoscalerMetrics {
    /// Register in `registry` (the caller gives it the `drover_autoscaler` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("ticks", "Ticks of all policies", m.ticks.clone());
        registry.register_with_unit(
            "tick_duration",
            "Time to read, decide and scale for all policies due",
            Unit::Seconds,
            m.tick_seconds.clone(),
        );
        registry.register(
            "decisions",
            "Decisions by policy and outcome",
            m.decisions.clone(),
        );
        registry.register(
            "instances",
            "Instances asked for, by policy",
            m.instances.clone(),
        );
        registry.register(
            "ready_instances",
            "Instances ready, by policy",
            m.ready.clone(),
        );
        registry.register("groups", "Groups of a service, by policy", m.groups.clone());
        registry.register(
            "panic",
            "1 while a policy is in panic mode",
            m.panic.clone(),
        );
        registry.register(
            "paused",
            "1 while a policy is paused (its app or service is gone)",
            m.paused.clone(),
        );
        registry.register(
            "reload_failures",
            "Policy reloads refused (the running policies were kept)",
            m.reload_failures.clone(),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    #[test]
    fn names_follow_the_convention() {
        let mut reg = Registry::default();
        let m = AutoscalerMetrics::register(reg.sub_registry_with_prefix("drover_autoscaler"));
        m.ticks.inc();
        m.decisions
            .get_or_create(&OutcomeLabels {
                policy: "web".into(),
                outcome: "applied",
            })
            .inc();
        let mut out = String::new();
        encode(&mut out, &reg).expect("encodes");
        assert!(out.contains("drover_autoscaler_ticks_total 1"), "{out}");
        assert!(
            out.contains("drover_autoscaler_decisions_total{policy=\"web\",outcome=\"applied\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("drover_autoscaler_tick_duration_seconds_bucket"),
            "{out}"
        );
    }
}
