//! Where tasks go: resource accounting per node, Marathon's constraints (UNIQUE, CLUSTER,
//! GROUP_BY, LIKE, UNLIKE, MAX_PER), spread by default, and the reason when nothing fits.
//! Pure: no IO, no clock.
use std::collections::{BTreeMap, HashMap, HashSet};

use regex::Regex;
use serde_json::Value;

use crate::model::Resources;

// === constraints ===

/// A constraint operator.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Each task on a node with a different value of the field.
    Unique,
    /// Every task on nodes with this value (or, without one, the same value).
    Cluster(Option<String>),
    /// Spread evenly over the field's values.
    GroupBy,
    /// Only nodes whose value matches the regex (whole value).
    Like(Regex),
    /// Only nodes whose value does not match the regex.
    Unlike(Regex),
    /// At most this many tasks per value of the field.
    MaxPer(usize),
}

/// `[field, OPERATOR, value?]`.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// Node attribute; `hostname` is the node ID.
    pub field: String,
    /// What it requires.
    pub op: Operator,
    /// As written, for messages.
    pub text: String,
}

/// Why a constraint does not read; the message names the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConstraintError {
    /// Not 2 or 3 elements.
    #[error("a constraint is [field, operator] or [field, operator, value]; got {0} element(s)")]
    Arity(usize),
    /// The operator needs a value that is missing.
    #[error("{op} needs a {what} value")]
    MissingValue {
        /// The operator.
        op: String,
        /// What kind of value.
        what: &'static str,
    },
    /// A LIKE/UNLIKE value is not a regular expression.
    #[error("{value:?} is not a valid regular expression: {source}")]
    Regex {
        /// The value.
        value: String,
        /// The regex error.
        source: regex::Error,
    },
    /// A GROUP_BY/MAX_PER value is not a positive whole number.
    #[error("{op} needs a positive whole number, got {value:?}")]
    Count {
        /// The operator.
        op: String,
        /// The value.
        value: String,
    },
    /// The operator is not one Drover knows.
    #[error(
        "unknown constraint operator {0:?}: use UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE or MAX_PER"
    )]
    Operator(String),
    /// The field is empty.
    #[error("the constraint's field is empty")]
    EmptyField,
}

impl Constraint {
    /// Parse Marathon's array form; the error names the problem.
    pub fn parse(v: &[Value]) -> Result<Self, ConstraintError> {
        let s = |i: usize| -> Option<String> {
            v.get(i).map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        };
        if v.len() < 2 || v.len() > 3 {
            return Err(ConstraintError::Arity(v.len()));
        }
        let field = s(0).unwrap_or_default();
        let op_name = s(1).unwrap_or_default();
        let value = s(2);
        let text = match &value {
            Some(val) => format!("{field}:{op_name}:{val}"),
            None => format!("{field}:{op_name}"),
        };
        let regex = |val: Option<String>| -> Result<Regex, ConstraintError> {
            let val = val.ok_or_else(|| ConstraintError::MissingValue {
                op: op_name.clone(),
                what: "regular expression",
            })?;
            Regex::new(&format!("^(?:{val})$"))
                .map_err(|source| ConstraintError::Regex { value: val, source })
        };
        let count = |val: Option<String>| -> Result<usize, ConstraintError> {
            let val = val.ok_or_else(|| ConstraintError::MissingValue {
                op: op_name.clone(),
                what: "number",
            })?;
            val.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConstraintError::Count {
                    op: op_name.clone(),
                    value: val.clone(),
                })
        };
        let op = match op_name.as_str() {
            "UNIQUE" => Operator::Unique,
            "CLUSTER" => Operator::Cluster(value.filter(|v| !v.is_empty())),
            "GROUP_BY" => {
                if let Some(v) = &value {
                    count(Some(v.clone()))?;
                }
                Operator::GroupBy
            }
            "LIKE" => Operator::Like(regex(value)?),
            "UNLIKE" => Operator::Unlike(regex(value)?),
            "MAX_PER" => Operator::MaxPer(count(value)?),
            other => return Err(ConstraintError::Operator(other.to_string())),
        };
        if field.is_empty() {
            return Err(ConstraintError::EmptyField);
        }
        Ok(Self { field, op, text })
    }
}

// === inputs ===

/// A node as placement sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Node ID.
    pub id: String,
    /// Attributes; `hostname` is looked up as the node ID when not set.
    pub attributes: BTreeMap<String, String>,
    /// Resources not yet taken.
    pub free: Resources,
    /// Host port range, inclusive.
    pub port_range: (u16, u16),
    /// Ports taken in the range.
    pub used_ports: HashSet<u16>,
    /// Why no new task may go here (cordoned, draining, unreachable), if so.
    pub unschedulable: Option<&'static str>,
    /// Where the next dynamic port search starts.
    pub next_port: u16,
}

impl Candidate {
    /// A schedulable node with these free resources and port range.
    pub fn new(id: impl Into<String>, free: Resources, port_range: (u16, u16)) -> Self {
        Self {
            id: id.into(),
            attributes: BTreeMap::new(),
            free,
            port_range,
            used_ports: HashSet::new(),
            unschedulable: None,
            next_port: port_range.0,
        }
    }

    fn attr(&self, field: &str) -> Option<&str> {
        match self.attributes.get(field) {
            Some(v) => Some(v),
            None if field == "hostname" => Some(&self.id),
            None => None,
        }
    }

    fn free_ports(&self) -> usize {
        let (lo, hi) = self.port_range;
        let len = if hi >= lo { (hi - lo) as usize + 1 } else { 0 };
        len.saturating_sub(self.used_ports.len())
    }

    fn ports_fit(&self, wanted: &[u16]) -> bool {
        let dynamic = wanted.iter().filter(|p| **p == 0).count();
        wanted
            .iter()
            .filter(|p| **p != 0)
            .all(|p| !self.used_ports.contains(p))
            && self.free_ports() >= dynamic
    }

    fn take_ports(&mut self, wanted: &[u16]) -> Vec<u16> {
        let (lo, hi) = self.port_range;
        let mut out = Vec::with_capacity(wanted.len());
        for &w in wanted {
            if w != 0 {
                self.used_ports.insert(w);
                out.push(w);
                continue;
            }
            let mut p = self.next_port.clamp(lo, hi);
            loop {
                if !self.used_ports.contains(&p) {
                    break;
                }
                p = if p >= hi { lo } else { p + 1 };
            }
            self.used_ports.insert(p);
            self.next_port = if p >= hi { lo } else { p + 1 };
            out.push(p);
        }
        out
    }
}

/// What each task of an app needs.
#[derive(Debug, Clone)]
pub struct Demand {
    /// Resources per task.
    pub resources: Resources,
    /// Host ports per task, 0 = any.
    pub ports: Vec<u16>,
    /// Constraints.
    pub constraints: Vec<Constraint>,
}

/// The outcome of placing tasks of one app.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// (candidate index, host ports) per placed task.
    pub placed: Vec<(usize, Vec<u16>)>,
    /// Why the rest could not be placed.
    pub reason: Option<String>,
}

// === placing ===

/// Place up to `count` tasks of one app on `nodes`. `existing` holds the candidate index of
/// each of the app's current tasks (for constraints and spreading). Takes the resources and
/// ports of what it places from `nodes`.
pub fn place(
    nodes: &mut [Candidate],
    existing: &[usize],
    demand: &Demand,
    count: usize,
) -> Placement {
    let n = nodes.len();
    if n == 0 {
        return Placement {
            placed: Vec::new(),
            reason: (count > 0).then(|| {
                "no nodes: start an agent (drover agent --master URL --node-id ID)".to_string()
            }),
        };
    }
    // Intern each constraint's field values: value id per node, task count per value.
    struct Cx<'a> {
        c: &'a Constraint,
        value_of: Vec<Option<u32>>,
        counts: Vec<usize>,
        matches: Vec<bool>,
        cluster_value: Option<u32>,
    }
    let mut cxs: Vec<Cx> = demand
        .constraints
        .iter()
        .map(|c| {
            let mut ids: HashMap<&str, u32> = HashMap::new();
            let value_of: Vec<Option<u32>> = nodes
                .iter()
                .map(|node| {
                    node.attr(&c.field).map(|v| {
                        let next = ids.len() as u32;
                        *ids.entry(v).or_insert(next)
                    })
                })
                .collect();
            let matches = nodes
                .iter()
                .map(|node| {
                    let v = node.attr(&c.field);
                    match &c.op {
                        Operator::Like(r) => v.is_some_and(|v| r.is_match(v)),
                        Operator::Unlike(r) => v.is_none_or(|v| !r.is_match(v)),
                        Operator::Cluster(Some(want)) => v == Some(want.as_str()),
                        _ => true,
                    }
                })
                .collect();
            let mut counts = vec![0usize; ids.len()];
            let mut cluster_value = None;
            for &i in existing {
                if let Some(v) = value_of.get(i).copied().flatten() {
                    counts[v as usize] += 1;
                    cluster_value.get_or_insert(v);
                }
            }
            Cx {
                c,
                value_of,
                counts,
                matches,
                cluster_value,
            }
        })
        .collect();
    /// The group load this node adds for the constraint, or None when it fails it.
    fn allows(cx: &Cx, i: usize) -> Option<usize> {
        if !cx.matches[i] {
            return None;
        }
        let v = cx.value_of[i];
        let ok = match (&cx.c.op, v) {
            (Operator::Like(_) | Operator::Unlike(_), _) => true,
            (_, None) => false,
            (Operator::Unique, Some(v)) => cx.counts[v as usize] == 0,
            (Operator::MaxPer(max), Some(v)) => cx.counts[v as usize] < *max,
            (Operator::Cluster(None), Some(v)) => cx.cluster_value.is_none_or(|c| c == v),
            (Operator::Cluster(Some(_)), Some(_)) => true,
            (Operator::GroupBy, Some(v)) => return Some(cx.counts[v as usize]),
        };
        ok.then_some(0)
    }
    let mut on_node = vec![0usize; n];
    for &i in existing {
        if i < n {
            on_node[i] += 1;
        }
    }
    let req = demand.resources;
    let mut out = Placement::default();
    for _ in 0..count {
        let mut best: Option<(usize, (usize, usize, u64))> = None;
        for (i, node) in nodes.iter().enumerate() {
            if node.unschedulable.is_some()
                || node.free.cpus + 1e-9 < req.cpus
                || node.free.mem + 1e-9 < req.mem
                || node.free.disk + 1e-9 < req.disk
                || !node.ports_fit(&demand.ports)
            {
                continue;
            }
            let Some(group_load) = cxs
                .iter()
                .try_fold(0usize, |acc, cx| allows(cx, i).map(|l| acc + l))
            else {
                continue;
            };
            // Spread: fewest of this app's tasks on the node, then on its group values, then
            // the most free CPU.
            let score = (
                on_node[i],
                group_load,
                u64::MAX - (node.free.cpus * 1000.0) as u64,
            );
            if best.as_ref().is_none_or(|(_, b)| score < *b) {
                best = Some((i, score));
            }
        }
        let Some((i, _)) = best else {
            let failed: Vec<Option<String>> = (0..n)
                .map(|i| {
                    cxs.iter()
                        .find(|cx| allows(cx, i).is_none())
                        .map(|cx| cx.c.text.clone())
                })
                .collect();
            out.reason = Some(explain(nodes, &failed, demand));
            break;
        };
        let node = &mut nodes[i];
        node.free.cpus -= req.cpus;
        node.free.mem -= req.mem;
        node.free.disk -= req.disk;
        let ports = node.take_ports(&demand.ports);
        on_node[i] += 1;
        for cx in cxs.iter_mut() {
            if let Some(v) = cx.value_of[i] {
                cx.counts[v as usize] += 1;
                cx.cluster_value.get_or_insert(v);
            }
        }
        out.placed.push((i, ports));
    }
    out
}

/// Why no node can take one more task: counts per reason.
fn explain(nodes: &[Candidate], failed_constraint: &[Option<String>], demand: &Demand) -> String {
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let req = demand.resources;
    for (i, node) in nodes.iter().enumerate() {
        let r = if let Some(why) = node.unschedulable {
            why.to_string()
        } else if node.free.cpus + 1e-9 < req.cpus {
            format!("not enough free cpus (needs {})", req.cpus)
        } else if node.free.mem + 1e-9 < req.mem {
            format!("not enough free mem (needs {} MiB)", req.mem)
        } else if node.free.disk + 1e-9 < req.disk {
            format!("not enough free disk (needs {} MiB)", req.disk)
        } else if !node.ports_fit(&demand.ports) {
            "no free host ports".to_string()
        } else if let Some(c) = failed_constraint.get(i).cloned().flatten() {
            format!("constraint {c} not met")
        } else {
            "constraints not met".to_string()
        };
        *reasons.entry(r).or_default() += 1;
    }
    let parts: Vec<String> = reasons
        .into_iter()
        .map(|(r, n)| format!("{n} node{}: {r}", if n == 1 { "" } else { "s" }))
        .collect();
    format!("no node can take another task ({})", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nodes(n: usize, cpus: f64) -> Vec<Candidate> {
        (0..n)
            .map(|i| {
                let mut c = Candidate::new(
                    format!("n{i}"),
                    Resources {
                        cpus,
                        mem: 1024.0,
                        disk: 0.0,
                    },
                    (31000, 31009),
                );
                c.attributes.insert("rack".into(), format!("r{}", i % 2));
                c
            })
            .collect()
    }

    fn demand(cpus: f64, constraints: &[Value]) -> Demand {
        Demand {
            resources: Resources {
                cpus,
                mem: 10.0,
                disk: 0.0,
            },
            ports: vec![0],
            constraints: constraints
                .iter()
                .map(|c| Constraint::parse(c.as_array().unwrap()).unwrap())
                .collect(),
        }
    }

    fn per_node(p: &Placement, n: usize) -> Vec<usize> {
        let mut v = vec![0; n];
        for (i, _) in &p.placed {
            v[*i] += 1;
        }
        v
    }

    #[test]
    fn spreads_by_default() {
        let mut ns = nodes(3, 4.0);
        let p = place(&mut ns, &[], &demand(0.1, &[]), 6);
        assert_eq!(per_node(&p, 3), vec![2, 2, 2]);
        assert!(p.reason.is_none());
    }

    #[test]
    fn accounts_resources_and_says_why() {
        let mut ns = nodes(2, 1.0);
        let p = place(&mut ns, &[], &demand(0.5, &[]), 5);
        assert_eq!(p.placed.len(), 4);
        let reason = p.reason.unwrap();
        assert!(reason.contains("not enough free cpus"), "{reason}");
    }

    #[test]
    fn unique_hostname() {
        let mut ns = nodes(3, 4.0);
        let p = place(
            &mut ns,
            &[],
            &demand(0.1, &[json!(["hostname", "UNIQUE"])]),
            5,
        );
        assert_eq!(p.placed.len(), 3);
        assert!(p.reason.unwrap().contains("hostname:UNIQUE"));
    }

    #[test]
    fn cluster_and_like() {
        let mut ns = nodes(4, 4.0);
        let p = place(
            &mut ns,
            &[],
            &demand(0.1, &[json!(["rack", "CLUSTER", "r1"])]),
            4,
        );
        assert_eq!(per_node(&p, 4), vec![0, 2, 0, 2]);
        let mut ns = nodes(4, 4.0);
        let p = place(&mut ns, &[], &demand(0.1, &[json!(["rack", "CLUSTER"])]), 4);
        let v = per_node(&p, 4);
        assert!(v == vec![2, 0, 2, 0] || v == vec![0, 2, 0, 2], "{v:?}");
        let mut ns = nodes(4, 4.0);
        let p = place(
            &mut ns,
            &[],
            &demand(0.1, &[json!(["hostname", "LIKE", "n[01]"])]),
            4,
        );
        assert_eq!(per_node(&p, 4), vec![2, 2, 0, 0]);
        let mut ns = nodes(4, 4.0);
        let p = place(
            &mut ns,
            &[],
            &demand(0.1, &[json!(["hostname", "UNLIKE", "n[01]"])]),
            4,
        );
        assert_eq!(per_node(&p, 4), vec![0, 0, 2, 2]);
    }

    #[test]
    fn group_by_and_max_per() {
        let mut ns = nodes(4, 4.0);
        let p = place(
            &mut ns,
            &[0, 2],
            &demand(0.1, &[json!(["rack", "GROUP_BY"])]),
            2,
        );
        // r0 (nodes 0 and 2) already has 2: both new ones go to r1
        assert_eq!(per_node(&p, 4), vec![0, 1, 0, 1]);
        let mut ns = nodes(4, 4.0);
        let p = place(
            &mut ns,
            &[],
            &demand(0.1, &[json!(["rack", "MAX_PER", "2"])]),
            6,
        );
        assert_eq!(p.placed.len(), 4);
    }

    #[test]
    fn cordoned_nodes_get_nothing() {
        let mut ns = nodes(2, 4.0);
        ns[0].unschedulable = Some("cordoned");
        let p = place(&mut ns, &[], &demand(0.1, &[]), 3);
        assert_eq!(per_node(&p, 2), vec![0, 3]);
    }

    #[test]
    fn ports_are_distinct_and_run_out() {
        let mut ns = nodes(1, 100.0);
        let p = place(&mut ns, &[], &demand(0.1, &[]), 12);
        assert_eq!(p.placed.len(), 10);
        let ports: HashSet<u16> = p.placed.iter().map(|(_, ps)| ps[0]).collect();
        assert_eq!(ports.len(), 10);
        assert!(p.reason.unwrap().contains("no free host ports"));
    }

    #[test]
    fn no_nodes_says_start_an_agent() {
        let p = place(&mut [], &[], &demand(0.1, &[]), 1);
        assert!(p.reason.unwrap().contains("drover agent"));
    }

    #[test]
    fn bad_constraints() {
        assert!(Constraint::parse(&[json!("a"), json!("SOMETIMES")])
            .unwrap_err()
            .to_string()
            .contains("unknown constraint operator"));
        assert!(Constraint::parse(&[json!("a"), json!("MAX_PER"), json!("x")]).is_err());
        assert!(Constraint::parse(&[json!("a"), json!("LIKE"), json!("(")]).is_err());
        assert!(Constraint::parse(&[json!("a")]).is_err());
    }

    proptest::proptest! {
        /// Whatever the nodes and the demand: no node is over-committed, host ports on a node
        /// are distinct and in its range, UNIQUE and MAX_PER hold, and what is not placed is
        /// explained.
        #[test]
        fn placement_invariants(
            node_cpus in proptest::collection::vec(0.0f64..4.0, 0..12),
            cpus in 0.1f64..2.0,
            count in 0usize..30,
            op in 0usize..3,
        ) {
            let mut ns: Vec<Candidate> = node_cpus
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let mut n = Candidate::new(
                        format!("n{i}"),
                        Resources { cpus: *c, mem: 1e6, disk: 0.0 },
                        (31000, 31004),
                    );
                    n.attributes.insert("rack".into(), format!("r{}", i % 3));
                    n
                })
                .collect();
            let totals: Vec<f64> = ns.iter().map(|n| n.free.cpus).collect();
            let constraints = match op {
                0 => vec![],
                1 => vec![json!(["hostname", "UNIQUE"])],
                _ => vec![json!(["rack", "MAX_PER", "2"])],
            };
            let p = place(&mut ns, &[], &demand(cpus, &constraints), count);
            let mut per_node = vec![0usize; ns.len()];
            let mut ports: Vec<HashSet<u16>> = vec![HashSet::new(); ns.len()];
            for (i, ps) in &p.placed {
                per_node[*i] += 1;
                for port in ps {
                    proptest::prop_assert!((31000..=31004).contains(port));
                    proptest::prop_assert!(ports[*i].insert(*port), "port {} used twice", port);
                }
            }
            for (i, n) in per_node.iter().enumerate() {
                proptest::prop_assert!(*n as f64 * cpus <= totals[i] + 1e-6);
                if op == 1 {
                    proptest::prop_assert!(*n <= 1);
                }
            }
            if op == 2 {
                for r in 0..3 {
                    let in_rack: usize = per_node.iter().enumerate().filter(|(i, _)| i % 3 == r).map(|(_, n)| n).sum();
                    proptest::prop_assert!(in_rack <= 2);
                }
            }
            proptest::prop_assert_eq!(p.placed.len() < count, p.reason.is_some());
        }
    }
}
