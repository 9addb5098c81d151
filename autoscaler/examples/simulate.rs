//! Runs the four generated traces through a policy file (default: Drover's default policy)
//! and writes the charts and the Markdown table of `autoscaler/README.md`:
//!
//! `cargo run -p drover-autoscaler --example simulate -- [POLICY.yaml] [OUT_DIR] [SEED]`
use std::path::PathBuf;

use drover_autoscaler::{
    policy,
    simulate::{simulate, AppModel},
    trace::{generate, TraceKind},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let policy_path = args
        .next()
        .unwrap_or_else(|| "autoscaler/examples/default.yaml".into());
    let out = PathBuf::from(args.next().unwrap_or_else(|| "autoscaler/docs".into()));
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let p = policy::load(&[PathBuf::from(policy_path)])?.remove(0);
    std::fs::create_dir_all(&out)?;
    println!("| trace | policy | s over SLO | instance-hours | scale events | direction changes | peak instances |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for k in TraceKind::ALL {
        let chart = out.join(format!("simulate-{k}.svg"));
        let r = simulate(&p, &generate(k, seed), &AppModel::default(), Some(&chart))?;
        print!("{}", r.markdown(k.as_str()));
    }
    Ok(())
}
