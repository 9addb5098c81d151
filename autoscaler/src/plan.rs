//! The vertical/horizontal split: a service's desired total spread over its groups.
//!
//! The gateway sends each group an equal share of the keys (a consistent-hash ring with the
//! same number of points per group), so groups are kept level: each holds the total divided
//! by the groups, the remainder going to the groups that already have the most instances.
//! A change of `n` instances therefore touches at most `n` groups and never the others
//! (vertical). When the total needs more than `groups × max-per-group`, whole groups are
//! added (horizontal); while a new group starts, no existing group is lowered. The last
//! group is removed only when the caller says the load has fit in fewer groups for the
//! whole down-window, and only once the remaining groups are ready to take its share: until
//! then they are resized and the removal waits.
use serde::Serialize;

use crate::policy::Bounds;

/// A group as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupObs {
    /// The app ID (`/shop/api/g2`).
    pub app: String,
    /// Instances asked for.
    pub instances: u32,
    /// Instances running and healthy (taking traffic).
    pub ready: u32,
}

/// One group's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupChange {
    /// The app ID.
    pub app: String,
    /// Instances before (0 for a new group).
    pub from: u32,
    /// Instances after.
    pub to: u32,
}

/// What to do with a service's groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// Every group that stays, with its new count (unchanged ones too).
    pub groups: Vec<GroupChange>,
    /// Groups to create (from the template), with their counts.
    pub add: Vec<GroupChange>,
    /// The group to drain and remove (always the last).
    pub remove: Option<String>,
    /// Why the plan differs from a plain split (bounds, a removal waiting).
    pub notes: Vec<String>,
}

impl Plan {
    /// The total after the plan.
    pub fn total(&self) -> u32 {
        self.groups.iter().chain(&self.add).map(|g| g.to).sum()
    }

    /// Whether anything changes.
    pub fn changes(&self) -> bool {
        self.remove.is_some() || !self.add.is_empty() || self.groups.iter().any(|g| g.from != g.to)
    }
}

/// The number in a group's name (`/shop/api/g12` → 12), for ordering and naming.
pub fn group_number(app: &str) -> Option<u32> {
    app.rsplit('/').next()?.strip_prefix('g')?.parse().ok()
}

/// The name of the next group of `service` after `groups`.
pub fn next_group(service: &str, groups: &[GroupObs], extra: u32) -> String {
    let n = groups
        .iter()
        .filter_map(|g| group_number(&g.app))
        .max()
        .unwrap_or(groups.len() as u32);
    format!("{service}/g{}", n + 1 + extra)
}

/// Spreads `total` over `n` groups as evenly as possible; the `+1`s go to the groups with
/// the most instances now (`current`, same order; missing ones count as 0).
fn level(total: u32, n: usize, current: &[u32]) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    let base = total / n as u32;
    let extra = (total % n as u32) as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(current.get(i).copied().unwrap_or(0)), i));
    let mut out = vec![base; n];
    for &i in order.iter().take(extra) {
        out[i] += 1;
    }
    out
}

/// Splits `desired` (already within the policy's total bounds) over `groups` (in order; the
/// last is the newest). `service` names new groups; `remove_ok` says the load has fit in
/// fewer groups for the whole down-window.
pub fn plan(
    service: &str,
    desired: u32,
    groups: &[GroupObs],
    per_group: Bounds,
    group_bounds: Bounds,
    remove_ok: bool,
) -> Plan {
    let mut out = Plan::default();
    let g = groups.len();
    let max = per_group.max.max(1);
    let needed = (desired.div_ceil(max) as usize)
        .clamp(group_bounds.min as usize, group_bounds.max.max(1) as usize);
    let current: Vec<u32> = groups.iter().map(|x| x.instances).collect();
    if needed > g {
        // Horizontal up: new groups; the existing ones are not lowered while they start.
        let counts = level(desired, needed, &current);
        let mut kept = 0;
        for (i, grp) in groups.iter().enumerate() {
            let to = per_group.clamp(counts[i].max(grp.instances));
            kept += to;
            out.groups.push(GroupChange {
                app: grp.app.clone(),
                from: grp.instances,
                to,
            });
        }
        // the new groups share what the kept ones do not hold
        let new = level(desired.saturating_sub(kept), needed - g, &[]);
        for (k, c) in new.into_iter().enumerate() {
            out.add.push(GroupChange {
                app: next_group(service, groups, k as u32),
                from: 0,
                to: per_group.clamp(c),
            });
        }
        return out;
    }
    let remove = remove_ok && g > group_bounds.min as usize && g > 1 && needed < g;
    let keep = if remove { g - 1 } else { g };
    let counts = level(desired, keep, &current);
    let mut ready_for_removal = true;
    for (i, grp) in groups.iter().take(keep).enumerate() {
        let to = per_group.clamp(counts[i]);
        if to != counts[i] {
            out.notes.push(format!(
                "{}: {} held to {} by the per-group bounds [{}, {}]",
                grp.app, counts[i], to, per_group.min, per_group.max
            ));
        }
        if grp.ready < to {
            ready_for_removal = false;
        }
        out.groups.push(GroupChange {
            app: grp.app.clone(),
            from: grp.instances,
            to,
        });
    }
    if remove {
        let last = &groups[g - 1];
        if ready_for_removal {
            out.remove = Some(last.app.clone());
        } else {
            out.notes.push(format!(
                "removing {} waits until the other groups have their instances ready",
                last.app
            ));
            out.groups.push(GroupChange {
                app: last.app.clone(),
                from: last.instances,
                to: per_group.clamp(last.instances),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn groups(counts: &[(u32, u32)]) -> Vec<GroupObs> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &(instances, ready))| GroupObs {
                app: format!("/s/g{}", i + 1),
                instances,
                ready,
            })
            .collect()
    }

    fn tos(p: &Plan) -> Vec<u32> {
        p.groups.iter().chain(&p.add).map(|g| g.to).collect()
    }

    const PER: Bounds = Bounds { min: 1, max: 10 };
    const GRP: Bounds = Bounds { min: 1, max: 4 };

    #[test]
    fn vertical_changes_touch_only_as_many_groups_as_instances_change() {
        // +1 over two level groups: only one group changes
        let p = plan("/s", 11, &groups(&[(5, 5), (5, 5)]), PER, GRP, false);
        assert_eq!(tos(&p), [6, 5]);
        // the next +1 goes to the other group; the first is not touched
        let p = plan("/s", 12, &groups(&[(6, 6), (5, 5)]), PER, GRP, false);
        assert_eq!(tos(&p), [6, 6]);
        assert!(p.add.is_empty() && p.remove.is_none());
        // -1: the group with the most loses it
        let p = plan("/s", 11, &groups(&[(6, 6), (6, 6)]), PER, GRP, false);
        assert_eq!(tos(&p), [6, 5]);
        // nothing to do
        let p = plan("/s", 12, &groups(&[(6, 6), (6, 6)]), PER, GRP, false);
        assert!(!p.changes());
    }

    #[test]
    fn more_than_the_groups_hold_adds_whole_groups() {
        let p = plan("/s", 25, &groups(&[(10, 10), (10, 10)]), PER, GRP, false);
        assert_eq!(p.add.len(), 1);
        assert_eq!(p.add[0].app, "/s/g3");
        // existing groups are not lowered while the new one starts
        assert_eq!(tos(&p), [10, 10, 5]);
        // two groups at once when needed, named after the highest number
        let gs = vec![
            GroupObs {
                app: "/s/g1".into(),
                instances: 10,
                ready: 10,
            },
            GroupObs {
                app: "/s/g7".into(),
                instances: 10,
                ready: 10,
            },
        ];
        let p = plan("/s", 40, &gs, PER, GRP, false);
        let names: Vec<&str> = p.add.iter().map(|g| g.app.as_str()).collect();
        assert_eq!(names, ["/s/g8", "/s/g9"]);
        // but never past the maximum groups
        let p = plan("/s", 40, &groups(&[(10, 10); 4]), PER, GRP, false);
        assert!(p.add.is_empty());
    }

    #[test]
    fn the_last_group_goes_only_when_allowed_and_the_others_are_ready() {
        let gs = groups(&[(5, 5), (5, 5), (2, 2)]);
        // fits in two groups but the down-window has not passed: level over three
        let p = plan("/s", 9, &gs, PER, GRP, false);
        assert!(p.remove.is_none());
        assert_eq!(tos(&p), [3, 3, 3]);
        // allowed, and the two others already hold their share: remove g3
        let p = plan("/s", 9, &gs, PER, GRP, true);
        assert_eq!(p.remove.as_deref(), Some("/s/g3"));
        assert_eq!(tos(&p), [5, 4]);
        // allowed, but the others must grow first: resize them, keep g3 for now
        let gs = groups(&[(3, 3), (3, 3), (3, 3)]);
        let p = plan("/s", 9, &gs, PER, GRP, true);
        assert!(p.remove.is_none());
        assert_eq!(tos(&p), [5, 4, 3]);
        assert!(p.notes[0].contains("waits"), "{:?}", p.notes);
        // never below the minimum groups
        let p = plan("/s", 1, &groups(&[(1, 1)]), PER, GRP, true);
        assert!(p.remove.is_none());
    }

    proptest! {
        #[test]
        fn no_plan_leaves_a_group_outside_its_bounds(
            counts in proptest::collection::vec((0u32..30, 0u32..30), 1..6),
            desired in 0u32..200,
            min in 0u32..5, span in 0u32..12,
            gmin in 1u32..3, gspan in 0u32..4,
            remove_ok: bool,
        ) {
            let per = Bounds { min, max: (min + span).max(1) };
            let grp = Bounds { min: gmin, max: gmin + gspan };
            let p = plan("/s", desired, &groups(&counts), per, grp, remove_ok);
            for g in p.groups.iter().chain(&p.add) {
                prop_assert!(g.to >= per.min && g.to <= per.max, "{g:?} outside {per:?}");
            }
            let after = p.groups.len() + p.add.len();
            prop_assert!(after <= counts.len().max(grp.max as usize));
        }
    }
}
