//! Container resource usage as `docker stats` computes it, from one stats sample.
//!
//! The sample is the Docker API's `GET /containers/{id}/stats?stream=false`, which waits for
//! a second reading so that `precpu_stats` holds the previous one. Memory figures differ
//! between cgroup v1 (`memory_stats.stats` has `total_rss`, `rss`, `total_inactive_file`,
//! `cache`, …; blkio ops `Read`/`Write`/`Sync`/`Total`…) and cgroup v2 (`anon`, `file`,
//! `inactive_file`, …; blkio ops `read`/`write`); both are read here.

use bollard::models::{ContainerBlkioStatEntry, ContainerCpuStats, ContainerStatsResponse};
use chrono::{DateTime, Utc};
use drover_schema::{ContainerStats, Source, SCHEMA_VERSION};

/// The figures of one sample, tagged with `source`. `cpu_limit` is the container's limit in
/// cores (see [`crate::tags::cpu_limit`]); `None` reports the host's online CPUs.
///
/// Returns `None` when the sample lacks what is needed: no `read` timestamp, no memory usage,
/// or neither a cgroup v1 `rss`/`total_rss` nor a v2 `anon` figure — as for a container
/// that has stopped.
pub fn compute(
    s: &ContainerStatsResponse,
    source: &Source,
    cpu_limit: Option<f64>,
) -> Option<ContainerStats> {
    let ts = DateTime::parse_from_rfc3339(s.read.as_deref()?)
        .ok()?
        .with_timezone(&Utc);
    let mem = s.memory_stats.as_ref()?;
    let usage = mem.usage?;
    let stats = mem.stats.as_ref()?;
    let get = |key: &str| stats.get(key).copied();
    // cgroup v1: total_rss counts the container's child cgroups too; v2: anon.
    let rss_bytes = get("total_rss").or(get("rss")).or(get("anon"))?;
    // v1: total_inactive_file; v2: inactive_file.
    let inactive_file = get("total_inactive_file")
        .or(get("inactive_file"))
        .unwrap_or(0);
    let mem_limit_bytes = mem.limit.unwrap_or(0);

    let online_cpus = s.cpu_stats.as_ref().map_or(1, online_cpus);
    let (blkio_read_bytes, blkio_write_bytes) = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_deref())
        .map_or((0, 0), blkio_read_write);
    let (net_rx_bytes, net_tx_bytes) =
        s.networks
            .iter()
            .flatten()
            .fold((0u64, 0u64), |(rx, tx), (_, n)| {
                (
                    rx.saturating_add(n.rx_bytes.unwrap_or(0)),
                    tx.saturating_add(n.tx_bytes.unwrap_or(0)),
                )
            });

    Some(ContainerStats {
        v: SCHEMA_VERSION,
        ts,
        source: source.clone(),
        cpu_pct: cpu_pct(s),
        cpu_limit: cpu_limit.unwrap_or(f64::from(online_cpus)),
        rss_bytes,
        working_set_bytes: usage.saturating_sub(inactive_file),
        mem_limit_bytes,
        rss_pct: percent(rss_bytes, mem_limit_bytes),
        blkio_read_bytes,
        blkio_write_bytes,
        net_rx_bytes,
        net_tx_bytes,
    })
}

/// CPUs the container may run on: `online_cpus`, else the length of `percpu_usage`
/// (older cgroup v1 engines), else 1.
fn online_cpus(cpu: &ContainerCpuStats) -> u32 {
    cpu.online_cpus
        .filter(|&n| n > 0)
        .or_else(|| {
            let percpu = cpu.cpu_usage.as_ref()?.percpu_usage.as_ref()?;
            u32::try_from(percpu.len()).ok().filter(|&n| n > 0)
        })
        .unwrap_or(1)
}

/// `Δcontainer / Δsystem × online CPUs × 100`, as the Docker CLI computes it; 0 when either
/// delta is not positive or the previous reading is missing.
fn cpu_pct(s: &ContainerStatsResponse) -> f64 {
    let (Some(cur), Some(pre)) = (s.cpu_stats.as_ref(), s.precpu_stats.as_ref()) else {
        return 0.0;
    };
    let total = |c: &ContainerCpuStats| c.cpu_usage.as_ref().and_then(|u| u.total_usage);
    let (Some(cur_total), Some(pre_total), Some(cur_system), Some(pre_system)) = (
        total(cur),
        total(pre),
        cur.system_cpu_usage,
        pre.system_cpu_usage,
    ) else {
        return 0.0;
    };
    if pre_system == 0 {
        // No previous reading (a one-shot sample): the ratio would be the average since boot.
        return 0.0;
    }
    let cpu_delta = cur_total as f64 - pre_total as f64;
    let system_delta = cur_system as f64 - pre_system as f64;
    if cpu_delta <= 0.0 || system_delta <= 0.0 {
        return 0.0;
    }
    cpu_delta / system_delta * f64::from(online_cpus(cur)) * 100.0
}

/// Sums of the `Read` and `Write` entries (any case: v1 writes `Read`, v2 `read`); the other
/// v1 ops (`Sync`, `Async`, `Discard`, `Total`) would count bytes twice.
fn blkio_read_write(entries: &[ContainerBlkioStatEntry]) -> (u64, u64) {
    entries.iter().fold((0u64, 0u64), |(r, w), e| {
        let v = e.value.unwrap_or(0);
        match e.op.as_deref() {
            Some(op) if op.eq_ignore_ascii_case("read") => (r.saturating_add(v), w),
            Some(op) if op.eq_ignore_ascii_case("write") => (r, w.saturating_add(v)),
            _ => (r, w),
        }
    })
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    part as f64 / whole as f64 * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        Source {
            host: "host-a".into(),
            app: "/shop/web".into(),
            container_id: "8fbf6dfd30ff".into(),
            container_name: "shop_web_1".into(),
            ..Default::default()
        }
    }

    fn sample(json: &str) -> ContainerStatsResponse {
        serde_json::from_str(json).expect("fixture parses as ContainerStatsResponse")
    }

    /// A change to a fixture, for table tests.
    type Edit = fn(&mut ContainerStatsResponse);

    fn assert_close(got: f64, want: f64, what: &str) {
        assert!((got - want).abs() < 1e-9, "{what}: got {got}, want {want}");
    }

    /// Docker 20.10 on cgroup v1 (this project's CI machine), a busybox container with
    /// `--memory 64m --cpus 0.5` spinning one core. Edited: blkio entries added as a block
    /// device reports them (fuse-overlayfs reports none), `total_rss` made to differ from
    /// `rss` (as with child cgroups), a second network.
    const V1: &str = r#"{
        "read": "2026-11-21T23:23:08.391309666Z",
        "preread": "2026-11-21T23:23:07.38729073Z",
        "pids_stats": {"current": 1},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 253, "minor": 0, "op": "Read", "value": 4194304},
                {"major": 253, "minor": 0, "op": "Write", "value": 16777216},
                {"major": 253, "minor": 0, "op": "Sync", "value": 16777216},
                {"major": 253, "minor": 0, "op": "Async", "value": 4194304},
                {"major": 253, "minor": 0, "op": "Discard", "value": 0},
                {"major": 253, "minor": 0, "op": "Total", "value": 20971520},
                {"major": 7, "minor": 1, "op": "Read", "value": 1024},
                {"major": 7, "minor": 1, "op": "Total", "value": 1024}
            ],
            "io_serviced_recursive": [],
            "io_queue_recursive": [],
            "io_service_time_recursive": [],
            "io_wait_time_recursive": [],
            "io_merged_recursive": [],
            "io_time_recursive": [],
            "sectors_recursive": []
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {
            "cpu_usage": {
                "total_usage": 2070307120,
                "percpu_usage": [11612370, 2058694750],
                "usage_in_kernelmode": 10000000,
                "usage_in_usermode": 2050000000
            },
            "system_cpu_usage": 2453440000000,
            "online_cpus": 2,
            "throttling_data": {"periods": 42, "throttled_periods": 40, "throttled_time": 1959371032}
        },
        "precpu_stats": {
            "cpu_usage": {
                "total_usage": 1569790625,
                "percpu_usage": [11612370, 1558178255],
                "usage_in_kernelmode": 10000000,
                "usage_in_usermode": 1550000000
            },
            "system_cpu_usage": 2451400000000,
            "online_cpus": 2,
            "throttling_data": {"periods": 32, "throttled_periods": 30, "throttled_time": 1461971523}
        },
        "memory_stats": {
            "usage": 10170368,
            "max_usage": 12070912,
            "stats": {
                "active_anon": 4096, "active_file": 782336, "cache": 9805824, "dirty": 0,
                "hierarchical_memory_limit": 67108864, "hierarchical_memsw_limit": 134217728,
                "inactive_anon": 61440, "inactive_file": 9023488, "mapped_file": 1355776,
                "pgfault": 1503, "pgmajfault": 26, "pgpgin": 3590, "pgpgout": 1180,
                "rss": 65536, "rss_huge": 0,
                "total_active_anon": 4096, "total_active_file": 782336, "total_cache": 9805824,
                "total_dirty": 0, "total_inactive_anon": 61440, "total_inactive_file": 9023488,
                "total_mapped_file": 1355776, "total_pgfault": 1503, "total_pgmajfault": 26,
                "total_pgpgin": 3590, "total_pgpgout": 1180, "total_rss": 69632,
                "total_rss_huge": 0, "total_unevictable": 0, "total_writeback": 0,
                "unevictable": 0, "writeback": 0
            },
            "limit": 67108864
        },
        "name": "/stats-fixture-probe",
        "id": "8fbf6dfd30ff75d7be951284d3dd1fca8dc90ddae1690fe14d667d96917f8868",
        "networks": {
            "eth0": {"rx_bytes": 736, "rx_packets": 8, "rx_errors": 0, "rx_dropped": 0,
                     "tx_bytes": 100, "tx_packets": 1, "tx_errors": 0, "tx_dropped": 0},
            "eth1": {"rx_bytes": 264, "rx_packets": 2, "rx_errors": 0, "rx_dropped": 0,
                     "tx_bytes": 50, "tx_packets": 1, "tx_errors": 0, "tx_dropped": 0}
        }
    }"#;

    /// Docker 24+ on cgroup v2 (no `percpu_usage`, no `max_usage`), `--memory 256m`, a
    /// process holding ~100 MiB and having written 32 MiB.
    const V2: &str = r#"{
        "name": "/demo",
        "id": "3b1c7a5e9f0d2c4b6a8e0f1d3c5b7a9e1f3d5c7b9a1e3f5d7c9b1a3e5f7d9c1b",
        "read": "2026-11-21T23:30:00.5Z",
        "preread": "2026-11-21T23:29:59.5Z",
        "pids_stats": {"current": 5, "limit": 18446744073709551615},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "read", "value": 1048576},
                {"major": 8, "minor": 0, "op": "write", "value": 33554432},
                {"major": 8, "minor": 16, "op": "read", "value": 4096},
                {"major": 8, "minor": 16, "op": "write", "value": 0}
            ],
            "io_serviced_recursive": null,
            "io_queue_recursive": null,
            "io_service_time_recursive": null,
            "io_wait_time_recursive": null,
            "io_merged_recursive": null,
            "io_time_recursive": null,
            "sectors_recursive": null
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": {
            "cpu_usage": {"total_usage": 12500000000, "usage_in_kernelmode": 500000000, "usage_in_usermode": 12000000000},
            "system_cpu_usage": 400000000000,
            "online_cpus": 4,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": 11000000000, "usage_in_kernelmode": 450000000, "usage_in_usermode": 10550000000},
            "system_cpu_usage": 396000000000,
            "online_cpus": 4,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
        },
        "memory_stats": {
            "usage": 140509184,
            "stats": {
                "active_anon": 104857600, "active_file": 2097152, "anon": 105906176,
                "anon_thp": 0, "file": 33554432, "file_dirty": 0, "file_mapped": 0,
                "file_writeback": 0, "inactive_anon": 1048576, "inactive_file": 31457280,
                "kernel_stack": 81920, "pgactivate": 0, "pgdeactivate": 0, "pgfault": 27000,
                "pgmajfault": 0, "shmem": 0, "slab": 524288, "sock": 0, "unevictable": 0,
                "workingset_activate": 0, "workingset_refault": 0
            },
            "limit": 268435456
        },
        "networks": {
            "eth0": {"rx_bytes": 5000, "rx_packets": 40, "rx_errors": 0, "rx_dropped": 0,
                     "tx_bytes": 3000, "tx_packets": 30, "tx_errors": 0, "tx_dropped": 0}
        }
    }"#;

    #[test]
    fn cgroup_v1() {
        let st = compute(&sample(V1), &source(), Some(0.5)).unwrap();
        assert_eq!(st.v, SCHEMA_VERSION);
        assert_eq!(
            st.ts,
            DateTime::parse_from_rfc3339("2026-11-21T23:23:08.391309666Z").unwrap()
        );
        assert_eq!(st.source, source());
        // (2070307120 − 1569790625) / (2453440000000 − 2451400000000) × 2 × 100
        assert_close(st.cpu_pct, 500516495.0 / 2040000000.0 * 200.0, "cpu_pct");
        assert!(
            (st.cpu_pct - 49.07).abs() < 0.01,
            "about half a core: {}",
            st.cpu_pct
        );
        assert_close(st.cpu_limit, 0.5, "cpu_limit");
        assert_eq!(st.rss_bytes, 69632, "total_rss, not rss");
        assert_eq!(st.working_set_bytes, 10170368 - 9023488);
        assert_eq!(st.mem_limit_bytes, 67108864);
        assert_close(st.rss_pct, 69632.0 / 67108864.0 * 100.0, "rss_pct");
        assert_eq!(st.blkio_read_bytes, 4194304 + 1024);
        assert_eq!(st.blkio_write_bytes, 16777216);
        assert_eq!(st.net_rx_bytes, 1000);
        assert_eq!(st.net_tx_bytes, 150);
    }

    #[test]
    fn cgroup_v2() {
        let st = compute(&sample(V2), &source(), None).unwrap();
        assert_eq!(
            st.ts,
            DateTime::parse_from_rfc3339("2026-11-21T23:30:00.5Z").unwrap()
        );
        // 1.5 s of CPU over 4 s of system time (4 CPUs × 1 s) × 4 × 100
        assert_close(st.cpu_pct, 150.0, "cpu_pct");
        assert_close(st.cpu_limit, 4.0, "cpu_limit: online CPUs when unlimited");
        assert_eq!(st.rss_bytes, 105906176, "anon");
        assert_eq!(st.working_set_bytes, 140509184 - 31457280);
        assert_eq!(st.mem_limit_bytes, 268435456);
        assert_close(st.rss_pct, 105906176.0 / 268435456.0 * 100.0, "rss_pct");
        assert_eq!(st.blkio_read_bytes, 1048576 + 4096);
        assert_eq!(st.blkio_write_bytes, 33554432);
        assert_eq!(st.net_rx_bytes, 5000);
        assert_eq!(st.net_tx_bytes, 3000);
    }

    #[test]
    fn the_record_serialises_as_a_metric() {
        let st = compute(&sample(V2), &source(), None).unwrap();
        let record = drover_schema::MetricRecord::Container(st.clone());
        let back: drover_schema::MetricRecord =
            drover_schema::decode(&drover_schema::encode(&record)).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn unlimited_memory_reports_the_host_memory() {
        // Docker reports the host's memory as the limit of an unlimited container.
        let mut s = sample(V1);
        let host_mem = 8_348_520_448;
        s.memory_stats.as_mut().unwrap().limit = Some(host_mem);
        let st = compute(&s, &source(), None).unwrap();
        assert_eq!(st.mem_limit_bytes, host_mem);
        assert_close(st.rss_pct, 69632.0 / host_mem as f64 * 100.0, "rss_pct");
        assert_close(st.cpu_limit, 2.0, "cpu_limit");
        // no limit at all: 0 %, not a division by zero
        s.memory_stats.as_mut().unwrap().limit = None;
        let st = compute(&s, &source(), None).unwrap();
        assert_eq!((st.mem_limit_bytes, st.rss_pct), (0, 0.0));
    }

    #[test]
    fn cpu_is_zero_without_positive_deltas() {
        let base = sample(V2);
        let cases: &[(&str, Edit)] = &[
            ("no change at all", |s| s.precpu_stats = s.cpu_stats.clone()),
            ("system delta 0", |s| {
                let pre = s.precpu_stats.as_mut().unwrap();
                pre.system_cpu_usage = s.cpu_stats.as_ref().unwrap().system_cpu_usage;
            }),
            ("container counter went back (restart)", |s| {
                let pre = s.precpu_stats.as_mut().unwrap();
                pre.cpu_usage.as_mut().unwrap().total_usage = Some(20_000_000_000);
            }),
            ("system delta negative", |s| {
                let pre = s.precpu_stats.as_mut().unwrap();
                pre.system_cpu_usage = Some(500_000_000_000);
            }),
            ("one-shot sample: empty precpu_stats", |s| {
                s.precpu_stats = Some(ContainerCpuStats::default())
            }),
            ("precpu_stats of zeros", |s| {
                let pre = s.precpu_stats.as_mut().unwrap();
                pre.system_cpu_usage = Some(0);
                pre.cpu_usage.as_mut().unwrap().total_usage = Some(0);
            }),
            ("no precpu_stats", |s| s.precpu_stats = None),
        ];
        for &(why, edit) in cases {
            let mut s = base.clone();
            edit(&mut s);
            let st = compute(&s, &source(), None).expect(why);
            assert_eq!(st.cpu_pct, 0.0, "{why}");
        }
    }

    #[test]
    fn online_cpus_fall_back_to_percpu_then_one() {
        let mut s = sample(V1);
        for c in [
            s.cpu_stats.as_mut().unwrap(),
            s.precpu_stats.as_mut().unwrap(),
        ] {
            c.online_cpus = None;
        }
        let st = compute(&s, &source(), None).unwrap();
        assert_close(st.cpu_limit, 2.0, "len(percpu_usage)");
        assert_close(st.cpu_pct, 500516495.0 / 2040000000.0 * 200.0, "cpu_pct");
        for c in [
            s.cpu_stats.as_mut().unwrap(),
            s.precpu_stats.as_mut().unwrap(),
        ] {
            c.cpu_usage.as_mut().unwrap().percpu_usage = None;
        }
        let st = compute(&s, &source(), None).unwrap();
        assert_close(st.cpu_limit, 1.0, "neither");
        assert_close(st.cpu_pct, 500516495.0 / 2040000000.0 * 100.0, "cpu_pct");
    }

    #[test]
    fn memory_fallbacks() {
        // v1 without the hierarchical total_* figures
        let mut s = sample(V1);
        let stats = s.memory_stats.as_mut().unwrap().stats.as_mut().unwrap();
        stats.remove("total_rss");
        stats.remove("total_inactive_file");
        let st = compute(&s, &source(), None).unwrap();
        assert_eq!(st.rss_bytes, 65536);
        assert_eq!(st.working_set_bytes, 10170368 - 9023488);
        // inactive file above usage (racy reads): saturates at 0
        let stats = s.memory_stats.as_mut().unwrap().stats.as_mut().unwrap();
        stats.insert("inactive_file".into(), u64::MAX);
        assert_eq!(compute(&s, &source(), None).unwrap().working_set_bytes, 0);
        // no inactive_file figure: the whole usage
        let stats = s.memory_stats.as_mut().unwrap().stats.as_mut().unwrap();
        stats.remove("inactive_file");
        assert_eq!(
            compute(&s, &source(), None).unwrap().working_set_bytes,
            10170368
        );
    }

    #[test]
    fn missing_io_counts_as_zero() {
        let mut s = sample(V1);
        s.blkio_stats.as_mut().unwrap().io_service_bytes_recursive = Some(vec![]);
        s.networks = None; // --network host / none
        let st = compute(&s, &source(), None).unwrap();
        assert_eq!((st.blkio_read_bytes, st.blkio_write_bytes), (0, 0));
        assert_eq!((st.net_rx_bytes, st.net_tx_bytes), (0, 0));
        s.blkio_stats = None;
        let st = compute(&s, &source(), None).unwrap();
        assert_eq!((st.blkio_read_bytes, st.blkio_write_bytes), (0, 0));
    }

    #[test]
    fn incomplete_samples_give_none() {
        // What Docker returns for a stopped container.
        let stopped = r#"{
            "read": "0001-01-01T00:00:00Z",
            "preread": "0001-01-01T00:00:00Z",
            "pids_stats": {},
            "blkio_stats": {"io_service_bytes_recursive": null},
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}},
            "memory_stats": {},
            "name": "/gone",
            "id": "3b1c7a5e9f0d",
            "networks": {}
        }"#;
        assert!(compute(&sample(stopped), &source(), None).is_none());

        let cases: &[(&str, Edit)] = &[
            ("no read", |s| s.read = None),
            ("bad read", |s| s.read = Some("yesterday".into())),
            ("no memory_stats", |s| s.memory_stats = None),
            ("no usage", |s| {
                s.memory_stats.as_mut().unwrap().usage = None
            }),
            ("no stats map", |s| {
                s.memory_stats.as_mut().unwrap().stats = None
            }),
            ("no rss figure", |s| {
                let stats = s.memory_stats.as_mut().unwrap().stats.as_mut().unwrap();
                stats.remove("anon");
            }),
        ];
        for &(why, edit) in cases {
            let mut s = sample(V2);
            edit(&mut s);
            assert!(compute(&s, &source(), None).is_none(), "{why}");
        }
    }
}
