//! Picking a backend in two steps: a consistent hash of the request's key picks the
//! instance group (so adding or removing a group moves only that group's keys), then the
//! power of two choices picks the backend with fewer requests in flight inside it.
use std::sync::Arc;

use crate::backend::Backend;

/// Points on the ring per group: enough for an even spread of a few groups.
const VNODES: u32 = 160;

/// A 64-bit hash that stays the same across runs and versions (FNV-1a, then the splitmix64
/// finalizer to spread the bits).
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A consistent-hash ring of groups, each named by a stable ID (its app ID).
#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// (point, index of the group), sorted by point.
    points: Vec<(u64, usize)>,
    groups: usize,
}

impl Ring {
    /// The ring of these groups (indexes follow `ids`).
    pub fn new<S: AsRef<str>>(ids: &[S]) -> Self {
        let mut points = Vec::with_capacity(ids.len() * VNODES as usize);
        for (i, id) in ids.iter().enumerate() {
            for v in 0..VNODES {
                points.push((hash(format!("{}#{v}", id.as_ref()).as_bytes()), i));
            }
        }
        points.sort_unstable();
        Self {
            points,
            groups: ids.len(),
        }
    }

    /// The groups in the order a key tries them: its own first, then the next distinct ones
    /// clockwise (used when its own has no backend).
    pub fn order(&self, key: u64) -> Vec<usize> {
        if self.groups == 0 {
            return Vec::new();
        }
        let start = self.points.partition_point(|(p, _)| *p < key);
        let mut seen = vec![false; self.groups];
        let mut out = Vec::with_capacity(self.groups);
        for k in 0..self.points.len() {
            let (_, g) = self.points[(start + k) % self.points.len()];
            if !seen[g] {
                seen[g] = true;
                out.push(g);
                if out.len() == self.groups {
                    break;
                }
            }
        }
        out
    }

    /// The group of a key.
    pub fn pick(&self, key: u64) -> Option<usize> {
        self.order(key).first().copied()
    }
}

/// Power of two choices: of two backends drawn at random, the one with fewer requests in
/// flight (the first drawn on a tie). `None` when there is none.
pub fn p2c<'a>(candidates: &[&'a Arc<Backend>]) -> Option<&'a Arc<Backend>> {
    p2c_index(candidates.len(), |i| candidates[i].in_flight()).map(|i| candidates[i])
}

/// [`p2c`] over `n` candidates known by index, `in_flight(i)` being the requests in flight
/// on the `i`-th: its index.
pub fn p2c_index(n: usize, in_flight: impl Fn(usize) -> u64) -> Option<usize> {
    match n {
        0 => None,
        1 => Some(0),
        n => {
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
            if b >= a {
                b += 1;
            }
            Some(if in_flight(b) < in_flight(a) { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("/shop/api/g{i}")).collect()
    }

    #[test]
    fn keys_spread_over_groups() {
        let ring = Ring::new(&ids(3));
        let mut counts = [0usize; 3];
        for k in 0..30_000u64 {
            counts[ring.pick(hash(&k.to_le_bytes())).unwrap()] += 1;
        }
        for c in counts {
            assert!((7_000..13_000).contains(&c), "{counts:?}");
        }
        assert_eq!(Ring::new::<String>(&[]).pick(1), None);
    }

    #[test]
    fn order_lists_every_group_once() {
        let ring = Ring::new(&ids(4));
        for k in 0..100u64 {
            let mut o = ring.order(hash(&k.to_le_bytes()));
            assert_eq!(o[0], ring.pick(hash(&k.to_le_bytes())).unwrap());
            o.sort_unstable();
            assert_eq!(o, [0, 1, 2, 3]);
        }
    }

    proptest! {
        /// Adding a group moves only keys to it; removing one moves only its keys.
        #[test]
        fn adding_or_removing_a_group_moves_only_that_groups_keys(
            n in 1usize..6,
            keys in proptest::collection::vec(any::<u64>(), 200),
        ) {
            let before = ids(n);
            let mut after = before.clone();
            after.push(format!("/shop/api/new{n}"));
            let (r1, r2) = (Ring::new(&before), Ring::new(&after));
            for &k in &keys {
                let k = hash(&k.to_le_bytes());
                let (a, b) = (r1.pick(k).unwrap(), r2.pick(k).unwrap());
                prop_assert!(a == b || b == n, "key moved from {a} to {b}, not to the new group");
            }
            // Remove group 0 (indexes shift by one: compare by ID).
            let removed: Vec<String> = before[1..].to_vec();
            let r3 = Ring::new(&removed);
            for &k in &keys {
                let k = hash(&k.to_le_bytes());
                let was = &before[r1.pick(k).unwrap()];
                match r3.pick(k) {
                    Some(now) => prop_assert!(was == &before[0] || &removed[now] == was,
                        "key of {was} moved to {}", removed[now]),
                    None => prop_assert!(removed.is_empty()),
                }
            }
        }
    }

    #[test]
    fn p2c_prefers_fewer_in_flight() {
        let now = tokio::time::Instant::now();
        let busy = Arc::new(Backend::new("busy", "/a", "n", "h:1", now));
        let idle = Arc::new(Backend::new("idle", "/a", "n", "h:2", now));
        for _ in 0..3 {
            busy.stats.start(now);
        }
        for _ in 0..50 {
            assert_eq!(p2c(&[&busy, &idle]).unwrap().task, "idle");
        }
        assert!(p2c(&[]).is_none());
        assert_eq!(p2c(&[&busy]).unwrap().task, "busy");
    }
}
