//! `drover bench gateway`: wrk (Debian's) straight to a backend, then through Drover's
//! gateway, HAProxy (as configured for the issue, and again doing the gateway's per-request
//! work: forwarding headers and a request ID) and nginx, each configured by the bench to the
//! same two backends (an nginx answering `ok` on two ports, in its own process) with the same
//! number of threads, in rounds whose order rotates; medians of requests/s, p50/p99 latency
//! and the latency each proxy adds over the direct run, the proxy's CPU (in % of one core and
//! per request) and RSS, and the gateway's throughput over HAProxy's — as a ratio of the
//! medians and as the median of each round's own ratio.
//!
//! Drover's gateway runs inside this process (routes applied by hand, no scheduler): its CPU
//! and RSS are this process's during the run, which does nothing else meanwhile.
use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context};
use clap::Args;
use drover_gateway::{AppView, Gateway, GatewayConfig, GatewayMetrics};
use serde::Serialize;
use tokio::sync::watch;

use crate::telemetry::{cpu_seconds, pid_cpu_seconds};

/// Options of `drover bench gateway`.
#[derive(Debug, Args)]
pub struct GatewayBenchArgs {
    /// Length of each wrk run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Rounds (each runs direct, drover, haproxy, haproxy+work, nginx once); medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// wrk's open connections.
    #[arg(long, default_value_t = 50)]
    connections: u32,
    /// wrk's threads.
    #[arg(long, default_value_t = 2)]
    threads: u32,
    /// Worker threads of Drover's gateway and HAProxy, worker processes of nginx: the same
    /// for all three, so none has more threads than another.
    #[arg(long, default_value_t = 2)]
    proxy_workers: u32,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// One wrk run.
#[derive(Debug, Clone, Serialize)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// The proxy's CPU, % of one core (none for direct).
    cpu_pct: Option<f64>,
    /// The proxy's resident memory after the run, MiB.
    rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Row {
    target: &'static str,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    added_p50_ms: f64,
    added_p99_ms: f64,
    errors: u64,
    cpu_pct: Option<f64>,
    /// The proxy's CPU time per request, microseconds: its cost, whatever the machine's load.
    cpu_us_per_request: Option<f64>,
    rss_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    rounds: usize,
    duration_s: f64,
    connections: u32,
    threads: u32,
    build: &'static str,
    rows: Vec<Row>,
    /// Drover's requests/s over HAProxy's (HAProxy as the issue configures it: forwardfor).
    drover_over_haproxy: f64,
    /// Drover's requests/s over HAProxy's when HAProxy does the gateway's per-request work
    /// too (forwarding headers, a request ID both ways).
    drover_over_haproxy_same_work: f64,
    /// The median over rounds of each round's Drover / HAProxy (runs a minute apart, so
    /// less moved by the machine's drift than the ratio of the medians).
    drover_over_haproxy_paired: f64,
    /// The same against HAProxy doing the same work.
    drover_over_haproxy_same_work_paired: f64,
}

const TARGETS: [&str; 5] = ["direct", "drover", "haproxy", "haproxy+work", "nginx"];
const HOST: &str = "bench.test";

/// Run the benchmark.
pub async fn run(args: GatewayBenchArgs) -> anyhow::Result<()> {
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    for tool in ["wrk", "haproxy", "nginx"] {
        which(tool).with_context(|| {
            format!("{tool} is not installed: run scripts/setup.sh (or apt-get install haproxy nginx wrk)")
        })?;
    }
    let dir = tempfile::tempdir().context("cannot make a temp dir")?;
    let backends = [free_port()?, free_port()?];
    let _backend = Proc::spawn(nginx_backend(dir.path(), backends)?, "nginx backend")?;
    wait_listening(backends[0]).await?;
    wait_listening(backends[1]).await?;

    // Drover's gateway, in this process.
    let drover_addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
    let gw = Gateway::new(
        GatewayConfig {
            workers: args.proxy_workers.max(1) as usize,
            ..GatewayConfig::default()
        },
        GatewayMetrics::default(),
        drover_schema::time::system_clock(),
    );
    gw.apply(&[AppView::on_loopback("/bench", HOST, &backends)]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(drover_addr)
        .await
        .with_context(|| format!("cannot bind {drover_addr}"))?;
    let serving = {
        let gw = gw.clone();
        tokio::spawn(async move { gw.serve(listener, stop_rx).await })
    };

    let haproxy_port = free_port()?;
    let haproxy = Proc::spawn(
        haproxy_cmd(
            dir.path(),
            haproxy_port,
            backends,
            args.proxy_workers,
            false,
        )?,
        "haproxy",
    )?;
    let haproxy_work_port = free_port()?;
    let haproxy_work = Proc::spawn(
        haproxy_cmd(
            dir.path(),
            haproxy_work_port,
            backends,
            args.proxy_workers,
            true,
        )?,
        "haproxy (same work)",
    )?;
    let nginx_port = free_port()?;
    let nginx = Proc::spawn(
        nginx_proxy(dir.path(), nginx_port, backends, args.proxy_workers)?,
        "nginx proxy",
    )?;
    wait_listening(haproxy_port).await?;
    wait_listening(haproxy_work_port).await?;
    wait_listening(nginx_port).await?;
    let haproxy_v = version("haproxy", &["-v"]);
    let nginx_v = version("nginx", &["-v"]);

    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); TARGETS.len()];
    for round in 1..=args.rounds {
        // Each round starts one target later, so none always runs first or right after
        // another (the machine drifts between runs; a fixed order would bias one target).
        let order = (0..TARGETS.len()).map(|k| (k + round - 1) % TARGETS.len());
        for i in order {
            let target = &TARGETS[i];
            let port = match *target {
                "direct" => backends[0],
                "drover" => drover_addr.port(),
                "haproxy" => haproxy_port,
                "haproxy+work" => haproxy_work_port,
                _ => nginx_port,
            };
            let pids: Vec<u32> = match *target {
                "haproxy" => vec![haproxy.pid()],
                "haproxy+work" => vec![haproxy_work.pid()],
                "nginx" => family(nginx.pid()),
                _ => Vec::new(),
            };
            let cpu_of = |pids: &[u32]| -> Option<f64> {
                if *target == "drover" {
                    return cpu_seconds();
                }
                if pids.is_empty() {
                    return None;
                }
                Some(pids.iter().filter_map(|p| pid_cpu_seconds(*p)).sum())
            };
            let cpu0 = cpu_of(&pids);
            let started = std::time::Instant::now();
            let mut run = wrk(&args, port).await?;
            let secs = started.elapsed().as_secs_f64();
            if let (Some(a), Some(b)) = (cpu0, cpu_of(&pids)) {
                run.cpu_pct = Some((b - a) / secs * 100.0);
            }
            run.rss_mib = match *target {
                "drover" => rss_mib("self"),
                "direct" => None,
                _ => Some(pids.iter().filter_map(|p| rss_mib(&p.to_string())).sum()),
            };
            eprintln!(
                "round {round}/{} {target:<12} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms{}",
                args.rounds,
                run.rps,
                run.p50_ms,
                run.p99_ms,
                if run.errors > 0 {
                    format!("  {} errors", run.errors)
                } else {
                    String::new()
                }
            );
            runs[i].push(run);
        }
    }
    let _ = stop_tx.send(true);
    let _ = serving.await;

    let paired = |a: &str, b: &str| paired_ratio(&runs, a, b);
    let paired_haproxy = paired("drover", "haproxy");
    let paired_same_work = paired("drover", "haproxy+work");
    let med: Vec<Run> = runs.into_iter().map(median_run).collect();
    let direct = med[0].clone();
    let rows: Vec<Row> = TARGETS
        .iter()
        .zip(&med)
        .map(|(t, r)| Row {
            target: t,
            rps: r.rps,
            p50_ms: r.p50_ms,
            p99_ms: r.p99_ms,
            added_p50_ms: r.p50_ms - direct.p50_ms,
            added_p99_ms: r.p99_ms - direct.p99_ms,
            errors: r.errors,
            cpu_pct: r.cpu_pct,
            cpu_us_per_request: r
                .cpu_pct
                .filter(|_| r.rps > 0.0)
                .map(|c| c / 100.0 * 1e6 / r.rps),
            rss_mib: r.rss_mib,
        })
        .collect();
    let report = Report {
        rounds: args.rounds,
        duration_s: args.duration.as_secs_f64(),
        connections: args.connections,
        threads: args.threads,
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        drover_over_haproxy: ratio(&rows, "drover", "haproxy"),
        drover_over_haproxy_same_work: ratio(&rows, "drover", "haproxy+work"),
        drover_over_haproxy_paired: paired_haproxy,
        drover_over_haproxy_same_work_paired: paired_same_work,
        rows,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "gateway: wrk -t{} -c{} -d{}s, 2 nginx backends, medians of {} rounds, {} build of drover; {haproxy_v}; {nginx_v}",
        report.threads, report.connections, report.duration_s, report.rounds, report.build
    );
    println!(
        "| target | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms | errors | proxy CPU % | proxy CPU µs/request | proxy RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &report.rows {
        let opt = |v: Option<f64>, p: usize| v.map_or_else(|| "-".into(), |x| format!("{x:.p$}"));
        println!(
            "| {} | {:.0} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} |",
            r.target,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            if r.target == "direct" {
                "-".into()
            } else {
                format!("{:.3}", r.added_p50_ms)
            },
            if r.target == "direct" {
                "-".into()
            } else {
                format!("{:.3}", r.added_p99_ms)
            },
            r.errors,
            opt(r.cpu_pct, 0),
            opt(r.cpu_us_per_request, 1),
            opt(r.rss_mib, 1),
        );
    }
    println!(
        "drover / haproxy throughput: {:.2}x; drover / haproxy doing the same per-request work: {:.2}x",
        report.drover_over_haproxy, report.drover_over_haproxy_same_work
    );
    println!(
        "median of the rounds' own ratios: {:.2}x; same work: {:.2}x",
        report.drover_over_haproxy_paired, report.drover_over_haproxy_same_work_paired
    );
    Ok(())
}

/// Requests/s of target `a` over target `b` (0 when `b` made none).
fn ratio(rows: &[Row], a: &str, b: &str) -> f64 {
    let rps = |t: &str| rows.iter().find(|r| r.target == t).map_or(0.0, |r| r.rps);
    if rps(b) > 0.0 {
        rps(a) / rps(b)
    } else {
        0.0
    }
}

/// The median over rounds of target `a`'s requests/s over target `b`'s in the same round.
fn paired_ratio(runs: &[Vec<Run>], a: &str, b: &str) -> f64 {
    let of = |t: &str| TARGETS.iter().position(|x| *x == t).map(|i| &runs[i]);
    let (Some(ra), Some(rb)) = (of(a), of(b)) else {
        return 0.0;
    };
    let mut ratios: Vec<f64> = ra
        .iter()
        .zip(rb)
        .filter(|(_, y)| y.rps > 0.0)
        .map(|(x, y)| x.rps / y.rps)
        .collect();
    if ratios.is_empty() {
        return 0.0;
    }
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

/// The run with the median requests/s.
fn median_run(mut runs: Vec<Run>) -> Run {
    runs.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    runs[runs.len() / 2].clone()
}

async fn wrk(args: &GatewayBenchArgs, port: u16) -> anyhow::Result<Run> {
    let out = tokio::process::Command::new("wrk")
        .args([
            &format!("-t{}", args.threads),
            &format!("-c{}", args.connections),
            &format!("-d{}s", args.duration.as_secs().max(1)),
            "--latency",
            "-H",
            &format!("Host: {HOST}"),
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .await
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "wrk failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk's output:\n{text}"))
}

/// Requests/s, p50, p99 and errors from wrk's `--latency` output.
fn parse_wrk(text: &str) -> Option<Run> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let mut errors = 0u64;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = wrk_ms(v.trim());
        } else if let Some(v) = line.strip_prefix("99%") {
            p99 = wrk_ms(v.trim());
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // connect 0, read 0, write 0, timeout 0
            errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    Some(Run {
        rps: rps?,
        p50_ms: p50?,
        p99_ms: p99?,
        errors,
        cpu_pct: None,
        rss_mib: None,
    })
}

/// wrk's `1.23ms`, `456.00us`, `1.02s`, `2.00m` in milliseconds.
fn wrk_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn which(tool: &str) -> anyhow::Result<()> {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        bail!("{tool} not found on PATH")
    }
}

fn version(tool: &str, args: &[&str]) -> String {
    Command::new(tool)
        .args(args)
        .output()
        .map(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().unwrap_or(tool).trim().to_string()
        })
        .unwrap_or_else(|_| tool.to_string())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_listening(port: u16) -> anyhow::Result<()> {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("nothing listens on 127.0.0.1:{port} after 5 s")
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Proc {
    fn spawn(mut cmd: Command, what: &str) -> anyhow::Result<Self> {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start the {what}"))?;
        Ok(Self(child))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGTERM so nginx's master takes its workers with it.
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..50 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process and its children (nginx's master and workers).
fn family(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
                continue;
            };
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 2..].split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(pid) {
                out.push(child);
            }
        }
    }
    out
}

/// Resident memory of `/proc/WHO` (a PID or `self`), MiB.
fn rss_mib(who: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{who}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn nginx_paths(dir: &Path, name: &str) -> String {
    let d = dir.join(name);
    let _ = std::fs::create_dir_all(&d);
    let d = d.display();
    format!("pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n")
}

fn nginx_http_temp(dir: &Path, name: &str) -> String {
    let d = dir.join(name);
    let d = d.display();
    format!(
        "client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;"
    )
}

fn nginx_cmd(dir: &Path, name: &str, conf: String) -> anyhow::Result<Command> {
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(&path, conf).with_context(|| format!("cannot write {}", path.display()))?;
    let mut c = Command::new("nginx");
    c.args([
        "-p",
        &dir.join(name).display().to_string(),
        "-e",
        &dir.join(name).join("error.log").display().to_string(),
        "-c",
        &path.display().to_string(),
    ]);
    Ok(c)
}

/// The backends: one nginx answering `ok` on two ports.
fn nginx_backend(dir: &Path, ports: [u16; 2]) -> anyhow::Result<Command> {
    let conf = format!(
        "daemon off;\nworker_processes 1;\n{}events {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  {}\n  keepalive_requests 100000;\n  server {{ listen 127.0.0.1:{}; location / {{ return 200 \"ok\\n\"; }} }}\n  server {{ listen 127.0.0.1:{}; location / {{ return 200 \"ok\\n\"; }} }}\n}}\n",
        nginx_paths(dir, "backend"),
        nginx_http_temp(dir, "backend"),
        ports[0],
        ports[1]
    );
    nginx_cmd(dir, "backend", conf)
}

/// nginx as the proxy: least connections over both backends, keep-alive both sides.
fn nginx_proxy(dir: &Path, port: u16, backends: [u16; 2], workers: u32) -> anyhow::Result<Command> {
    let conf = format!(
        "daemon off;\nworker_processes {workers};\n{}events {{ worker_connections 4096; }}\nhttp {{\n  access_log off;\n  {}\n  keepalive_requests 100000;\n  upstream be {{ least_conn; server 127.0.0.1:{}; server 127.0.0.1:{}; keepalive 256; keepalive_requests 100000; }}\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://be;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    }}\n  }}\n}}\n",
        nginx_paths(dir, "proxy"),
        nginx_http_temp(dir, "proxy"),
        backends[0],
        backends[1]
    );
    nginx_cmd(dir, "proxy", conf)
}

/// HAProxy: least connections over both backends, keep-alive and connection reuse. With
/// `same_work`, it also does what Drover's gateway does to every request: `X-Forwarded-Proto`,
/// `X-Forwarded-Host` and `Forwarded` set, a request ID made and sent both ways (HAProxy keeps
/// per-server counters and timers in any case, as the gateway keeps per-instance stats).
fn haproxy_cmd(
    dir: &Path,
    port: u16,
    backends: [u16; 2],
    threads: u32,
    same_work: bool,
) -> anyhow::Result<Command> {
    let extra = if same_work {
        concat!(
            "  unique-id-format %[uuid(4)]\n",
            "  unique-id-header X-Request-Id\n",
            "  http-request set-header X-Forwarded-Proto http\n",
            "  http-request set-header X-Forwarded-Host %[req.hdr(host)]\n",
            "  http-request add-header Forwarded \"for=%[src];host=\\\"%[req.hdr(host)]\\\";proto=http\"\n",
            "  http-after-response set-header X-Request-Id %[unique-id]\n",
        )
    } else {
        ""
    };
    let conf = format!(
        "global\n  maxconn 4096\n  nbthread {threads}\n\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  option http-keep-alive\n  option forwardfor\n\nfrontend fe\n  bind 127.0.0.1:{port}\n{extra}  default_backend be\n\nbackend be\n  balance leastconn\n  http-reuse always\n  server b1 127.0.0.1:{}\n  server b2 127.0.0.1:{}\n",
        backends[0], backends[1]
    );
    let name = if same_work {
        "haproxy-same-work.cfg"
    } else {
        "haproxy.cfg"
    };
    let path = dir.join(name);
    std::fs::write(&path, conf).with_context(|| format!("cannot write {}", path.display()))?;
    let mut c = Command::new("haproxy");
    c.args(["-db", "-f", &path.display().to_string()]);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_ratio_is_the_median_of_each_rounds_ratio() {
        let run = |rps: f64| Run {
            rps,
            p50_ms: 0.0,
            p99_ms: 0.0,
            errors: 0,
            cpu_pct: None,
            rss_mib: None,
        };
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); TARGETS.len()];
        // drover is TARGETS[1], haproxy TARGETS[2]; the machine slows down each round.
        for (d, h) in [(100.0, 100.0), (45.0, 50.0), (30.0, 20.0)] {
            runs[1].push(run(d));
            runs[2].push(run(h));
        }
        assert!((paired_ratio(&runs, "drover", "haproxy") - 1.0).abs() < 1e-9);
        // The ratio of the medians (45 / 50) says otherwise: that is why both are printed.
        assert!(
            (median_run(runs[1].clone()).rps / median_run(runs[2].clone()).rps - 0.9).abs() < 1e-9
        );
        assert_eq!(
            paired_ratio(&runs, "drover", "nginx"),
            0.0,
            "no runs: no ratio"
        );
    }

    #[test]
    fn reads_wrk_output() {
        let text = "Running 10s test @ http://127.0.0.1:1/\n  2 threads and 50 connections\n  Latency Distribution\n     50%  512.00us\n     75%    1.00ms\n     90%    2.00ms\n     99%    4.56ms\n  123 requests in 10.00s, 1.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 4\nRequests/sec:  12345.67\nTransfer/sec:      1.00MB\n";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.rps, 12345.67);
        assert_eq!(r.p50_ms, 0.512);
        assert_eq!(r.p99_ms, 4.56);
        assert_eq!(r.errors, 7);
        assert_eq!(wrk_ms("1.50s"), Some(1500.0));
        assert!(parse_wrk("garbage").is_none());
    }

    /// Both HAProxy configurations the bench writes are ones HAProxy (Debian's, installed by
    /// scripts/setup.sh) accepts.
    #[test]
    fn haproxy_accepts_both_configurations() {
        let dir = tempfile::tempdir().unwrap();
        for same_work in [false, true] {
            let cmd = haproxy_cmd(dir.path(), 1, [2, 3], 2, same_work).unwrap();
            let cfg = cmd.get_args().nth(2).unwrap().to_owned();
            let out = Command::new("haproxy")
                .arg("-c")
                .arg("-f")
                .arg(&cfg)
                .output()
                .expect("haproxy is installed (scripts/setup.sh)");
            assert!(
                out.status.success(),
                "haproxy -c refused {cfg:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
