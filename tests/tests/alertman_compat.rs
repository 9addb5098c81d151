//! Side by side with Alertmanager 0.25 (Debian's prometheus-alertmanager): one recorded alert
//! stream (`tests/alertman/alert_stream.json`: grouping, a late joiner, resolutions, a group
//! that ends and fires again, a silence, an inhibition, repeats) replayed to a real
//! Alertmanager and a real `drover alertman` by `tests/alertman/side_by_side.py`, which
//! records every webhook notification of both. The two must send the same notifications:
//! the same groups, and per notification the same alerts with the same statuses, in the same
//! order per group — each within 2 s of the other (both flush on their group timers).
use std::{path::PathBuf, process::Command, time::Duration};

use serde_json::Value;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

#[test]
fn alertman_sends_what_alertmanager_0_25_sends_on_one_alert_stream() {
    let am = ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Alertmanager is installed (Debian's prometheus-alertmanager; scripts/setup.sh installs it)");
    let drover = drover_tests::drover::drover_bin();
    assert!(
        drover.exists(),
        "{} missing: cargo build -p drover",
        drover.display()
    );
    let script = repo_root().join("tests/alertman/side_by_side.py");
    let started = std::time::Instant::now();
    let out = Command::new("python3")
        .arg(&script)
        .args(["--json", "--alertmanager", am, "--drover"])
        .arg(&drover)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON from the script ({e}):\n{stderr}"));
    assert!(
        started.elapsed() > Duration::from_secs(100),
        "the stream lasts 2 minutes"
    );
    let rows = v["rows"].as_array().expect("rows");
    let show = || serde_json::to_string_pretty(&v["rows"]).unwrap();
    let totals = &v["totals"];
    let am_n = totals["alertmanager"]["notifications"].as_u64().unwrap();
    let dr_n = totals["drover"]["notifications"].as_u64().unwrap();
    assert!(am_n >= 10, "Alertmanager sent only {am_n}:\n{}", show());
    assert_eq!(am_n, dr_n, "notifications sent\n{}", show());
    assert_eq!(
        totals["alertmanager"]["groups"],
        totals["drover"]["groups"],
        "{}",
        show()
    );
    for r in rows {
        assert_eq!(r["same"], true, "differs: {r:#}\nall:\n{}", show());
        let (a, d) = (&r["alertmanager"], &r["drover"]);
        let dt = (a["t"].as_f64().unwrap() - d["t"].as_f64().unwrap()).abs();
        assert!(dt <= 2.0, "{dt:.2} s apart: {r:#}");
    }
    // The silenced and the inhibited alerts reached neither receiver.
    let text = v["notifications"].to_string();
    assert!(!text.contains("HighLatency"), "silenced: {text}");
    assert!(!text.contains("ApiSlow"), "inhibited: {text}");
    assert_eq!(v["totals"]["same_notifications"], true, "{stderr}");
}
