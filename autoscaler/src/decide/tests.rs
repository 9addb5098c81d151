use std::time::Duration;

use drover_schema::time::{Clock, ManualClock};
use proptest::prelude::*;

use super::*;
use crate::policy::{load_one, MetricKind};

fn policy(yaml: &str) -> Policy {
    load_one("p", yaml).unwrap_or_else(|e| panic!("{e}"))
}

fn app_policy(extra: &str) -> Policy {
    policy(&format!(
        "app: /a\nmetrics:\n  - metric: concurrency\n    target: 10\ninstances: {{min: 1, max: 50}}\n{extra}"
    ))
}

fn obs(instances: u32, ready: u32, values: &[Option<f64>]) -> Observation {
    Observation {
        groups: vec![GroupObs {
            app: "/a".into(),
            instances,
            ready,
        }],
        deploying: false,
        metrics: values
            .iter()
            .map(|v| MetricObs {
                value: *v,
                recent: *v,
            })
            .collect(),
    }
}

fn clock() -> ManualClock {
    ManualClock::at_ms(1_800_000_000_000)
}

/// Runs one tick and applies it (as the live loop does when the scheduler accepts).
fn tick(p: &Policy, st: &mut State, o: &Observation, c: &ManualClock) -> Decision {
    let d = decide(p, st, o, c.now());
    st.applied(&d);
    d
}

#[test]
fn the_proportional_rule_and_tolerance() {
    let spec = |kind: MetricKind, target: f64| MetricSpec {
        kind,
        series: crate::policy::series_of(kind).into(),
        target,
    };
    // (metric, value, current, ready, want)
    type Case = (MetricSpec, Option<f64>, u32, u32, Option<u32>);
    let cases: &[Case] = &[
        // totals: ceil(total / target)
        (
            spec(MetricKind::Concurrency, 10.0),
            Some(45.0),
            2,
            2,
            Some(5),
        ),
        (
            spec(MetricKind::Concurrency, 10.0),
            Some(5.0),
            4,
            4,
            Some(1),
        ),
        (
            spec(MetricKind::RequestRate, 100.0),
            Some(1000.0),
            4,
            4,
            Some(10),
        ),
        // within 10% of the target per ready instance: the current count
        (
            spec(MetricKind::Concurrency, 10.0),
            Some(41.0),
            4,
            4,
            Some(4),
        ),
        (
            spec(MetricKind::Concurrency, 10.0),
            Some(36.0),
            4,
            4,
            Some(4),
        ),
        // just outside
        (
            spec(MetricKind::Concurrency, 10.0),
            Some(45.0),
            4,
            4,
            Some(5),
        ),
        (
            spec(MetricKind::Concurrency, 10.0),
            Some(35.0),
            4,
            4,
            Some(4),
        ),
        (
            spec(MetricKind::Concurrency, 10.0),
            Some(29.0),
            4,
            4,
            Some(3),
        ),
        // averages: ceil(ready × value / target)
        (spec(MetricKind::CpuPct, 50.0), Some(100.0), 3, 3, Some(6)),
        (spec(MetricKind::CpuPct, 50.0), Some(53.0), 3, 3, Some(3)),
        (spec(MetricKind::CpuPct, 50.0), Some(20.0), 5, 5, Some(2)),
        // the ratio counts ready instances; the tolerance keeps the asked-for count
        (spec(MetricKind::CpuPct, 50.0), Some(50.0), 5, 3, Some(5)),
        // no ready instance to average over, or no data: no opinion
        (spec(MetricKind::CpuPct, 50.0), Some(90.0), 2, 0, None),
        (spec(MetricKind::Concurrency, 10.0), None, 2, 2, None),
        // latency: over the SLO at least +1, at most ×2; within: no opinion
        (
            spec(MetricKind::LatencyP95, 200.0),
            Some(230.0),
            4,
            4,
            Some(5),
        ),
        (
            spec(MetricKind::LatencyP95, 200.0),
            Some(300.0),
            4,
            4,
            Some(6),
        ),
        (
            spec(MetricKind::LatencyP95, 200.0),
            Some(2000.0),
            4,
            4,
            Some(8),
        ),
        (spec(MetricKind::LatencyP95, 200.0), Some(210.0), 4, 4, None),
        (spec(MetricKind::LatencyP99, 200.0), Some(50.0), 4, 4, None),
    ];
    for (i, (m, v, cur, ready, want)) in cases.iter().enumerate() {
        let r = recommend(m, *v, *cur, *ready, 0.1);
        assert_eq!(
            r.recommendation, *want,
            "case {i}: {m:?} {v:?} {cur}/{ready}: {r:?}"
        );
    }
}

#[test]
fn the_largest_recommendation_wins_and_is_explained() {
    let p = policy(
        "app: /a\nmetrics:\n  - {metric: concurrency, target: 10}\n  - {metric: cpu_pct, target: 50}\n",
    );
    let c = clock();
    let d = decide(
        &p,
        &mut State::default(),
        &obs(2, 2, &[Some(30.0), Some(100.0)]),
        c.now(),
    );
    assert_eq!(d.metrics[0].recommendation, Some(3));
    assert_eq!(d.metrics[1].recommendation, Some(4));
    assert_eq!((d.winner.as_str(), d.desired), ("cpu_pct", 4));
    assert_eq!(
        d.resize[0],
        GroupChange {
            app: "/a".into(),
            from: 2,
            to: 4
        }
    );
    assert_eq!(d.outcome, Outcome::Planned);
    assert!(d.summary().contains("2 → 4"), "{}", d.summary());
    let text = d.explain();
    assert!(text.starts_with("/a (p) at "), "{text}");
    assert!(text.contains("2 → 4 instances — planned"), "{text}");
    assert!(
        text.contains("  concurrency: 30.00 (target 10) → 3: "),
        "{text}"
    );
    assert!(text.contains("  largest: 4 (cpu_pct)"), "{text}");
    assert!(text.contains("  resize /a: 2 → 4"), "{text}");
}

#[test]
fn missing_metrics_never_scale_down() {
    let p = policy(
        "app: /a\nmetrics:\n  - {metric: concurrency, target: 10}\n  - {metric: cpu_pct, target: 50}\nstabilization: {down: 0s}\n",
    );
    let c = clock();
    // concurrency says 1, cpu is missing: hold at 4
    let d = decide(
        &p,
        &mut State::default(),
        &obs(4, 4, &[Some(5.0), None]),
        c.now(),
    );
    assert_eq!(d.desired, 4);
    assert_eq!(d.held[0].rule, "missing_metrics");
    // all missing: hold
    let d = decide(
        &p,
        &mut State::default(),
        &obs(4, 4, &[None, None]),
        c.now(),
    );
    assert_eq!((d.desired, d.winner.as_str()), (4, "none"));
    // missing does not stop a scale-up
    let d = decide(
        &p,
        &mut State::default(),
        &obs(4, 4, &[Some(80.0), None]),
        c.now(),
    );
    assert_eq!(d.desired, 8);
}

#[test]
fn a_latency_over_its_slo_never_lets_capacity_fall() {
    let p = policy(
        "app: /a\nmetrics:\n  - {metric: concurrency, target: 10}\n  - {metric: latency_p99, target: 200}\nstabilization: {down: 0s}\n",
    );
    let c = clock();
    // concurrency asks for 1, latency is over: +1
    let d = decide(
        &p,
        &mut State::default(),
        &obs(4, 4, &[Some(5.0), Some(260.0)]),
        c.now(),
    );
    assert_eq!(
        (d.desired, d.winner.as_str()),
        (6, "latency_p99"),
        "ceil(4 × 1.3)"
    );
    let d = decide(
        &p,
        &mut State::default(),
        &obs(4, 4, &[Some(5.0), Some(225.0)]),
        c.now(),
    );
    assert_eq!(d.desired, 5, "at least one more");
    // latency fine: down to 1
    let d = decide(
        &p,
        &mut State::default(),
        &obs(4, 4, &[Some(5.0), Some(100.0)]),
        c.now(),
    );
    assert_eq!(d.desired, 1);
}

#[test]
fn no_change_while_a_deployment_is_in_progress() {
    let p = app_policy("");
    let c = clock();
    let mut o = obs(2, 2, &[Some(100.0)]);
    o.deploying = true;
    let d = decide(&p, &mut State::default(), &o, c.now());
    assert_eq!(d.desired, 2);
    assert!(!d.changes());
    assert_eq!(d.held[0].rule, "deployment");
    assert!(d.interesting());
}

#[test]
fn the_down_window_keeps_the_highest_recommendation() {
    let p = app_policy("stabilization: {down: 300s}\npanic: {enabled: false}\n");
    let c = clock();
    let mut st = State::default();
    assert_eq!(tick(&p, &mut st, &obs(4, 4, &[Some(80.0)]), &c).desired, 8);
    // the load falls; for 300s the count stays
    for _ in 0..149 {
        c.advance(Duration::from_secs(2));
        let d = tick(&p, &mut st, &obs(8, 8, &[Some(20.0)]), &c);
        assert_eq!(d.desired, 8, "at {}", d.at);
        assert_eq!(
            d.held.last().map(|h| h.rule.as_str()),
            Some("stabilization_down")
        );
    }
    c.advance(Duration::from_secs(2));
    let d = tick(&p, &mut st, &obs(8, 8, &[Some(20.0)]), &c);
    assert_eq!(d.desired, 2);
}

#[test]
fn the_up_window_keeps_the_lowest_recommendation() {
    let p = app_policy("stabilization: {up: 10s, down: 0s}\npanic: {enabled: false}\n");
    let c = clock();
    let mut st = State::default();
    assert_eq!(tick(&p, &mut st, &obs(4, 4, &[Some(40.0)]), &c).desired, 4);
    c.advance(Duration::from_secs(2));
    let d = tick(&p, &mut st, &obs(4, 4, &[Some(80.0)]), &c);
    assert_eq!(d.desired, 4);
    assert_eq!(d.held[0].rule, "stabilization_up");
    c.advance(Duration::from_secs(10));
    let d = tick(&p, &mut st, &obs(4, 4, &[Some(80.0)]), &c);
    assert_eq!(d.desired, 8);
}

#[test]
fn rate_policies_limit_each_period() {
    // up: 100% or 4 per 15s (the larger); down: 1 instance per 10s
    let p = app_policy(
        "stabilization: {down: 0s}\npanic: {enabled: false}\nbehavior:\n  down:\n    policies: [{type: instances, value: 1, period: 10s}]\n",
    );
    let c = clock();
    let mut st = State::default();
    let d = tick(&p, &mut st, &obs(2, 2, &[Some(400.0)]), &c);
    assert_eq!(d.desired, 6, "2 + 4 (more than 100% of 2)");
    assert_eq!(d.held[0].rule, "rate_up");
    c.advance(Duration::from_secs(2));
    // inside the same 15s: the period started at 2, so 6 is all it allows
    let d = tick(&p, &mut st, &obs(6, 6, &[Some(400.0)]), &c);
    assert_eq!(d.desired, 6);
    c.advance(Duration::from_secs(14));
    let d = tick(&p, &mut st, &obs(6, 6, &[Some(400.0)]), &c);
    assert_eq!(d.desired, 12, "100% of 6");
    // down one per 10s
    c.advance(Duration::from_secs(2));
    assert_eq!(
        tick(&p, &mut st, &obs(12, 12, &[Some(10.0)]), &c).desired,
        11
    );
    c.advance(Duration::from_secs(2));
    let d = tick(&p, &mut st, &obs(11, 11, &[Some(10.0)]), &c);
    assert_eq!((d.desired, d.held[0].rule.as_str()), (11, "rate_down"));
    c.advance(Duration::from_secs(9));
    assert_eq!(
        tick(&p, &mut st, &obs(11, 11, &[Some(10.0)]), &c).desired,
        10
    );
    // select: min with two policies takes the smaller step
    let p = app_policy(
        "panic: {enabled: false}\nbehavior:\n  up:\n    select: min\n    policies:\n      - {type: instances, value: 1, period: 15s}\n      - {type: percent, value: 100, period: 15s}\n",
    );
    let d = decide(
        &p,
        &mut State::default(),
        &obs(4, 4, &[Some(400.0)]),
        c.now(),
    );
    assert_eq!(d.desired, 5);
    // disabled: no scale-up at all
    let p = app_policy("behavior:\n  up:\n    select: disabled\n    policies: []\n");
    let d = decide(
        &p,
        &mut State::default(),
        &obs(4, 4, &[Some(400.0)]),
        c.now(),
    );
    assert_eq!(d.desired, 4);
}

#[test]
fn cooldowns_hold_changes() {
    let p = app_policy(
        "stabilization: {down: 0s}\npanic: {enabled: false}\ncooldown: {up: 30s, down: 60s}\nsettle: 0s\n",
    );
    let c = clock();
    let mut st = State::default();
    assert_eq!(tick(&p, &mut st, &obs(2, 2, &[Some(40.0)]), &c).desired, 4);
    c.advance(Duration::from_secs(10));
    let d = tick(&p, &mut st, &obs(4, 4, &[Some(80.0)]), &c);
    assert_eq!((d.desired, d.held[0].rule.as_str()), (4, "cooldown_up"));
    c.advance(Duration::from_secs(20));
    assert_eq!(tick(&p, &mut st, &obs(4, 4, &[Some(80.0)]), &c).desired, 8);
    c.advance(Duration::from_secs(10));
    let d = tick(&p, &mut st, &obs(8, 8, &[Some(10.0)]), &c);
    assert_eq!((d.desired, d.held[0].rule.as_str()), (8, "cooldown_down"));
    c.advance(Duration::from_secs(50));
    assert_eq!(tick(&p, &mut st, &obs(8, 8, &[Some(10.0)]), &c).desired, 1);
}

#[test]
fn panic_mode_enters_on_a_burst_blocks_scale_down_and_exits_after_the_window() {
    // 60s stable window, 6s panic window, threshold 2
    let p = app_policy("window: 60s\nstabilization: {down: 0s}\n");
    let c = clock();
    let mut st = State::default();
    let burst = |stable: f64, short: f64, n: u32| Observation {
        metrics: vec![MetricObs {
            value: Some(stable),
            recent: Some(short),
        }],
        ..obs(n, n, &[])
    };
    // stable window still low (25 → 3), the short window sees 4× (80 over 2 ready → 8 = 4×)
    let d = tick(&p, &mut st, &burst(25.0, 80.0, 2), &c);
    assert!(d.panic);
    assert_eq!((d.desired, d.winner.as_str()), (6, "panic"), "{d:#?}");
    assert!(d.held.iter().any(|h| h.rule == "rate_up"));
    // the burst ends: no scale-down while panicking
    c.advance(Duration::from_secs(2));
    let d = tick(&p, &mut st, &burst(10.0, 10.0, 6), &c);
    assert!(d.panic);
    assert_eq!(d.desired, 6);
    assert!(d.held.iter().any(|h| h.rule == "panic"));
    // 60s after the last tick over the threshold: panic ends, the count may fall
    c.advance(Duration::from_secs(58));
    let d = tick(&p, &mut st, &burst(10.0, 10.0, 6), &c);
    assert!(!d.panic);
    assert_eq!(d.desired, 1);
    // below the threshold (1.5×): no panic
    let d = decide(&p, &mut State::default(), &burst(20.0, 30.0, 2), c.now());
    assert!(!d.panic);
    // panic off: the short window is ignored
    let p = app_policy("panic: {enabled: false}\n");
    let d = decide(&p, &mut State::default(), &burst(20.0, 80.0, 2), c.now());
    assert!(!d.panic);
    assert_eq!(d.desired, 2);
}

#[test]
fn a_restart_seeded_from_history_keeps_a_recent_peak() {
    let p = app_policy("stabilization: {down: 300s}\npanic: {enabled: false}\n");
    let c = clock();
    let t0 = c.now();
    // history: a peak of 90 (9 instances) two minutes ago
    let history: Vec<(DateTime<Utc>, Vec<Option<f64>>)> = (0..10)
        .map(|i| {
            let t = t0 - chrono::Duration::seconds(120 - i * 10);
            (t, vec![Some(if i == 2 { 90.0 } else { 20.0 })])
        })
        .collect();
    let mut seeded = State::default();
    seeded.seed(&p, &history, 9, 9);
    let d = decide(&p, &mut seeded, &obs(9, 9, &[Some(20.0)]), c.now());
    assert_eq!(d.desired, 9, "{d:#?}");
    // without the seed the restart would drop at once
    let d = decide(
        &p,
        &mut State::default(),
        &obs(9, 9, &[Some(20.0)]),
        c.now(),
    );
    assert_eq!(d.desired, 2);
    // once the peak is older than the window, the seeded state lets go
    c.advance(Duration::from_secs(200));
    let d = decide(&p, &mut seeded, &obs(9, 9, &[Some(20.0)]), c.now());
    assert_eq!(d.desired, 2);
}

fn service_obs(groups: &[(u32, u32)], conc: f64) -> Observation {
    Observation {
        groups: groups
            .iter()
            .enumerate()
            .map(|(i, &(instances, ready))| GroupObs {
                app: format!("/s/g{}", i + 1),
                instances,
                ready,
            })
            .collect(),
        deploying: false,
        metrics: vec![MetricObs {
            value: Some(conc),
            recent: Some(conc),
        }],
    }
}

#[test]
fn a_service_adds_a_group_and_removes_the_last_after_the_down_window() {
    let p = policy(
        "service: /s\nmetrics: [{metric: concurrency, target: 10}]\ninstances: {min: 1, max: 4}\ngroups: {min: 1, max: 3}\nstabilization: {down: 60s}\nfill_threshold: 0.75\npanic: {enabled: false}\nsettle: 0s\n",
    );
    let c = clock();
    let mut st = State::default();
    // 60 in flight = 6 instances > 4 per group: a second group
    let d = tick(&p, &mut st, &service_obs(&[(4, 4)], 60.0), &c);
    assert_eq!(d.desired, 6);
    assert!(d.resize.is_empty(), "g1 is kept: {:?}", d.resize);
    assert_eq!(
        d.add,
        vec![GroupChange {
            app: "/s/g2".into(),
            from: 0,
            to: 2
        }]
    );
    // more: both groups grow, level
    c.advance(Duration::from_secs(2));
    let d = tick(&p, &mut st, &service_obs(&[(4, 4), (2, 2)], 80.0), &c);
    assert_eq!(d.desired, 8);
    assert_eq!(
        d.resize,
        vec![GroupChange {
            app: "/s/g2".into(),
            from: 2,
            to: 4
        }]
    );
    // the load falls to 20 (2 instances): fits in 1 group below 0.75 × 4 = 3
    c.advance(Duration::from_secs(2));
    let d = tick(&p, &mut st, &service_obs(&[(4, 4), (4, 4)], 20.0), &c);
    assert_eq!(d.desired, 8, "the down window holds");
    assert!(d.remove.is_none());
    for _ in 0..29 {
        c.advance(Duration::from_secs(2));
        let d = tick(&p, &mut st, &service_obs(&[(4, 4), (4, 4)], 20.0), &c);
        assert!(d.remove.is_none(), "{}", d.at);
    }
    c.advance(Duration::from_secs(2));
    let d = tick(&p, &mut st, &service_obs(&[(4, 4), (4, 4)], 20.0), &c);
    assert_eq!(d.desired, 2);
    assert_eq!(d.remove.as_deref(), Some("/s/g2"));
    assert_eq!(
        d.resize,
        vec![GroupChange {
            app: "/s/g1".into(),
            from: 4,
            to: 2
        }]
    );
}

#[test]
fn dry_run_says_what_it_would_do() {
    let p = app_policy("dry_run: true\n");
    let c = clock();
    let d = decide(
        &p,
        &mut State::default(),
        &obs(2, 2, &[Some(80.0)]),
        c.now(),
    );
    assert_eq!(d.outcome, Outcome::DryRun);
    assert_eq!(d.desired, 6);
}

proptest! {
    #[test]
    fn no_decision_leaves_a_group_outside_its_bounds(
        steps in proptest::collection::vec((0.0f64..500.0, 0.0f64..500.0, 0u32..3, any::<bool>()), 1..40),
        min in 1u32..4, span in 0u32..8, gmax in 1u32..4,
    ) {
        let p = policy(&format!(
            "service: /s\nmetrics: [{{metric: concurrency, target: 10}}, {{metric: latency_p95, target: 100}}]\ninstances: {{min: {min}, max: {}}}\ngroups: {{min: 1, max: {gmax}}}\nstabilization: {{down: 10s}}\n",
            min + span
        ));
        let c = clock();
        let mut st = State::default();
        let mut groups: Vec<(u32, u32)> = vec![(min, min)];
        for (conc, lat, lag, missing) in steps {
            let mut o = service_obs(&groups, conc);
            o.metrics.push(MetricObs { value: if missing { None } else { Some(lat) }, recent: None });
            let d = tick(&p, &mut st, &o, &c);
            for g in d.resize.iter().chain(&d.add) {
                prop_assert!(g.to >= p.instances.min && g.to <= p.instances.max, "{g:?}");
            }
            // apply: the new counts, ready lagging behind
            let mut next: Vec<(u32, u32)> = Vec::new();
            for (i, g) in d.groups_before.iter().enumerate() {
                if d.remove.as_deref() == Some(g.app.as_str()) {
                    continue;
                }
                let to = d.resize.iter().find(|r| r.app == g.app).map_or(g.instances, |r| r.to);
                next.push((to, to.saturating_sub(lag).max(groups[i].1.min(to))));
            }
            for a in &d.add {
                next.push((a.to, a.to.saturating_sub(lag)));
            }
            prop_assert!(next.len() <= gmax as usize && !next.is_empty());
            for &(n, _) in &next {
                prop_assert!(n >= p.instances.min && n <= p.instances.max);
            }
            groups = next;
            c.advance(Duration::from_secs(2));
        }
    }
}

fn obs2(instances: u32, ready: u32, stable: f64, recent: f64) -> Observation {
    Observation {
        metrics: vec![MetricObs {
            value: Some(stable),
            recent: Some(recent),
        }],
        ..obs(instances, ready, &[])
    }
}

#[test]
fn a_scale_up_on_a_total_needs_the_short_window_to_confirm_it() {
    let p = app_policy("panic: {enabled: false}\n");
    let c = clock();
    // the long window still holds a queue the short one no longer shows
    let d = decide(&p, &mut State::default(), &obs2(4, 4, 200.0, 50.0), c.now());
    assert_eq!(d.desired, 5);
    assert!(
        d.metrics[0].note.contains("confirms only 5"),
        "{}",
        d.metrics[0].note
    );
    // both agree: the long window's count
    let d = decide(
        &p,
        &mut State::default(),
        &obs2(4, 4, 200.0, 210.0),
        c.now(),
    );
    assert_eq!(d.desired, 8);
    // off (HPA, KPA): the long window alone
    let p = app_policy("panic: {enabled: false}\nconfirm_up: false\n");
    let d = decide(&p, &mut State::default(), &obs2(4, 4, 200.0, 50.0), c.now());
    assert_eq!(d.desired, 8);
}

#[test]
fn a_draining_queue_is_not_a_reason_to_scale_up() {
    let p = app_policy(
        "panic: {enabled: false}\nsettle: 0s\nbehavior:\n  up:\n    policies: [{type: percent, value: 1000, period: 2s}]\n",
    );
    let c = clock();
    let mut st = State::default();
    assert_eq!(tick(&p, &mut st, &obs2(8, 8, 100.0, 100.0), &c).desired, 10);
    c.advance(Duration::from_secs(2));
    // rising: up
    assert_eq!(
        tick(&p, &mut st, &obs2(10, 10, 300.0, 400.0), &c).desired,
        30
    );
    c.advance(Duration::from_secs(2));
    // the short window falls by more than the tolerance: the capacity is answering it
    let d = tick(&p, &mut st, &obs2(30, 30, 500.0, 330.0), &c);
    assert_eq!(d.desired, 30, "{d:#?}");
    assert!(
        d.metrics[0].note.contains("draining"),
        "{}",
        d.metrics[0].note
    );
    // the same report seen again by the next tick: still compared with the one before
    c.advance(Duration::from_secs(2));
    assert_eq!(
        tick(&p, &mut st, &obs2(30, 30, 500.0, 330.0), &c).desired,
        30
    );
    // steady again: the long window may ask for more
    c.advance(Duration::from_secs(2));
    assert_eq!(
        tick(&p, &mut st, &obs2(30, 30, 500.0, 500.0), &c).desired,
        50
    );
}

#[test]
fn the_next_scale_up_waits_for_the_last_to_be_ready_and_settle() {
    let p = app_policy("panic: {enabled: false}\nsettle: 10s\nstabilization: {down: 0s}\n");
    let c = clock();
    let mut st = State::default();
    assert_eq!(tick(&p, &mut st, &obs(2, 2, &[Some(40.0)]), &c).desired, 4);
    // two instances still starting
    c.advance(Duration::from_secs(2));
    let d = tick(&p, &mut st, &obs(4, 2, &[Some(80.0)]), &c);
    assert_eq!((d.desired, d.held[0].rule.as_str()), (4, "settle"));
    assert!(d.held[0].detail.contains("still starting"));
    // ready: 10 s for their effect to show
    c.advance(Duration::from_secs(4));
    let d = tick(&p, &mut st, &obs(4, 4, &[Some(80.0)]), &c);
    assert_eq!((d.desired, d.held[0].rule.as_str()), (4, "settle"));
    c.advance(Duration::from_secs(10));
    assert_eq!(tick(&p, &mut st, &obs(4, 4, &[Some(80.0)]), &c).desired, 8);
    // a scale-down is never held by settling
    c.advance(Duration::from_secs(2));
    assert_eq!(tick(&p, &mut st, &obs(8, 4, &[Some(10.0)]), &c).desired, 1);
}

proptest! {
    /// Whatever the history: a tick with a metric missing, or a latency over its SLO, never
    /// lowers the count.
    #[test]
    fn missing_metrics_and_a_latency_over_its_slo_never_lower_the_count(
        history in proptest::collection::vec((0.0f64..400.0, 0.0f64..400.0, 1u32..20), 0..30),
        conc in 0.0f64..400.0,
        current in 1u32..20,
        lat_over in any::<bool>(),
    ) {
        let p = policy(
            "app: /a\nmetrics:\n  - {metric: concurrency, target: 10}\n  - {metric: cpu_pct, target: 50}\n  - {metric: latency_p95, target: 200}\ninstances: {min: 1, max: 40}\nstabilization: {down: 0s}\n",
        );
        let c = clock();
        let mut st = State::default();
        for (a, b, n) in history {
            let o = Observation {
                metrics: vec![
                    MetricObs { value: Some(a), recent: Some(a) },
                    MetricObs { value: Some(b / 4.0), recent: None },
                    MetricObs { value: Some(100.0), recent: Some(100.0) },
                ],
                ..obs(n, n, &[])
            };
            tick(&p, &mut st, &o, &c);
            c.advance(Duration::from_secs(2));
        }
        let metrics = if lat_over {
            // every metric there, latency over the SLO
            vec![
                MetricObs { value: Some(conc), recent: Some(conc) },
                MetricObs { value: Some(1.0), recent: None },
                MetricObs { value: Some(900.0), recent: Some(900.0) },
            ]
        } else {
            // CPU missing
            vec![
                MetricObs { value: Some(conc), recent: Some(conc) },
                MetricObs { value: None, recent: None },
                MetricObs { value: Some(100.0), recent: Some(100.0) },
            ]
        };
        let d = decide(&p, &mut st, &Observation { metrics, ..obs(current, current, &[]) }, c.now());
        prop_assert!(d.desired >= current, "{} → {}: {:?}", current, d.desired, d.held);
    }
}
