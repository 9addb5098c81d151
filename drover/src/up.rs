//! `drover up`: every role on one machine.
use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Args;
use drover_collector::CollectorMetrics;
use drover_kafka::{
    admin,
    embedded::{BrokerMetrics, EmbeddedBroker},
};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::{
    alertman_cmd::{AlertmanOpts, RunningAlertman},
    autoscaler_cmd::{AutoscalerOpts, RunningAutoscaler},
    broker_cmd::start_broker,
    collector_cmd::CollectorOpts,
    datadir,
    gateway_cmd::{bind_gateway, GatewayOpts, RunningGateway},
    http::{self, bind_http, shutdown_signal, AppState},
    logs_cmd::{LogpipeOpts, RunningLogpipe},
    metrics_cmd::{MetricsOpts, RunningMetricsStore},
    scheduler_cmd::{self, AgentOpts, MasterOpts},
    telemetry::ProcessMetrics,
};

/// Options of `drover up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address of the HTTP server that serves the UI and every API.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        env = "DROVER_HTTP"
    )]
    pub http: SocketAddr,
    /// Directory for all state: the broker's messages, indexes, the scheduler's store.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./drover-data",
        env = "DROVER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// Use this Kafka cluster (host:port,...) instead of starting the embedded broker.
    #[arg(long, value_name = "BROKERS", env = "DROVER_KAFKA")]
    pub kafka: Option<String>,
    /// Address the embedded broker listens on; any Kafka client can connect to it.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:9092",
        conflicts_with = "kafka"
    )]
    pub broker_listen: SocketAddr,
    /// Partitions for each of Drover's topics when Drover creates them.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=256))]
    pub partitions: i32,
    /// Retention of one of Drover's topics, `TOPIC=DURATION` (repeatable; TOPIC is a topic
    /// name or logs, metrics, events, deadletter). Defaults: logs 3d, metrics 2d, events 30d,
    /// deadletter 30d. Set when a topic is created and on existing topics at every start; the
    /// embedded broker deletes older records in its maintenance (see
    /// --broker-maintenance-interval).
    #[arg(long, value_name = "TOPIC=DURATION", value_parser = crate::broker_cmd::parse_topic_retention)]
    pub topic_retention: Vec<String>,
    /// How often the embedded broker deletes the records past their topic's retention (it also
    /// does at start). Each pass scans the stored records and holds up the broker's other
    /// work while it runs, so minutes, not seconds, on a busy host.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration, conflicts_with = "kafka")]
    pub broker_maintenance_interval: Duration,
    /// Path of the tansu program for the embedded broker (default: the one scripts/setup.sh
    /// installed into ~/.cache/drover/tools, or tansu on PATH).
    #[arg(long, value_name = "PATH", env = "DROVER_TANSU_BIN")]
    pub tansu_bin: Option<PathBuf>,
    /// Do not run the collector (this machine's containers' logs and stats).
    #[arg(long)]
    pub no_collector: bool,
    #[command(flatten)]
    pub collector: CollectorOpts,
    /// Do not run the scheduler (master and local agent).
    #[arg(long)]
    pub no_scheduler: bool,
    #[command(flatten)]
    pub master: MasterOpts,
    #[command(flatten)]
    pub agent: AgentOpts,
    /// Do not run the logpipe (the search API still serves the index already on disk).
    #[arg(long)]
    pub no_logpipe: bool,
    #[command(flatten)]
    pub logpipe: LogpipeOpts,
    /// Do not run the metrics store (no /api/metrics/...).
    #[arg(long)]
    pub no_metrics_store: bool,
    #[command(flatten)]
    pub metrics: MetricsOpts,
    /// Address of the gateway: the HTTP reverse proxy that routes requests to the apps by
    /// their labels (drover.gateway.host, drover.gateway.path, or marathon-lb's
    /// HAPROXY_0_VHOST, HAPROXY_0_PATH).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:8000",
        env = "DROVER_GATEWAY"
    )]
    pub gateway: SocketAddr,
    /// Do not run the gateway.
    #[arg(long)]
    pub no_gateway: bool,
    #[command(flatten)]
    pub gateway_opts: GatewayOpts,
    /// Do not run Alertman (alert rules, notifications, /api/alerts, /api/v2/...).
    #[arg(long)]
    pub no_alertman: bool,
    #[command(flatten)]
    pub alertman: AlertmanOpts,
    /// Do not run the autoscaler (policies, /api/autoscaler/*).
    #[arg(long)]
    pub no_autoscaler: bool,
    #[command(flatten)]
    pub autoscaler: AutoscalerOpts,
    /// Deploy the demo app (/demo: two instances of drover-demo:latest logging and serving a
    /// little generated traffic), to see live logs and charts without writing any config.
    #[arg(long, conflicts_with = "no_scheduler")]
    pub demo: bool,
    /// The image of the demo app (with --demo).
    #[arg(long, value_name = "IMAGE", default_value = crate::demo::IMAGE, requires = "demo")]
    pub demo_image: String,
}

/// Run `drover up` until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    // Bad config files are reported before anything starts.
    if !args.no_logpipe {
        args.logpipe.config("")?;
    }
    if !args.no_alertman {
        drover_alertman::rules::load(&args.alertman.rules)?;
    }
    if !args.no_autoscaler {
        crate::autoscaler_cmd::check_files(&args.autoscaler.policies)?;
    }
    if args.demo {
        crate::demo::check_image(&args.collector.docker, &args.demo_image).await?;
    }
    let data_dir = datadir::prepare(&args.data_dir)?;
    // One owner per component directory: a second `drover up` (or a role started alone) on
    // the same data dir is refused, naming the PID that holds it.
    let parts = [
        ("broker", args.kafka.is_none()),
        ("collector", !args.no_collector),
        ("logs", !args.no_logpipe),
        ("metrics", !args.no_metrics_store),
        ("scheduler", !args.no_scheduler),
        ("alertman", !args.no_alertman),
    ];
    let _locks = parts
        .iter()
        .filter(|(_, used)| *used)
        .map(|(part, _)| datadir::lock(&data_dir.join(part), "drover up"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let listener = bind_http(args.http).await?;
    // Off loopback without auth is refused here, before anything starts.
    let mut guard = http::guard_for(args.http, Some(&data_dir))?;
    if !drover_auth::client::has_process_token() {
        // No cluster token: this process's own components (the local agent, the autoscaler,
        // Alertman's actions) call its API with a token made for this run, so they keep
        // working when a token is created while it runs.
        let internal = drover_auth::new_token()?;
        drover_auth::client::set_process_token(&internal);
        guard.internal = Some(drover_auth::Secret::new(&internal)?);
    }
    let (audit_tx, audit_rx) = tokio::sync::mpsc::unbounded_channel();
    guard.events = Some(audit_tx);
    let guard = drover_auth::Guard::new(guard);
    let mut registry = Registry::default();
    let process = ProcessMetrics::register(&mut registry);
    let drover = registry.sub_registry_with_prefix("drover");

    let (kafka, broker) = match &args.kafka {
        Some(brokers) => {
            admin::check_reachable(brokers, Duration::from_secs(5)).await?;
            (brokers.clone(), None)
        }
        None => {
            let broker = start_broker(
                args.broker_listen,
                data_dir.join("broker"),
                args.tansu_bin.clone(),
                args.broker_maintenance_interval,
                BrokerMetrics::register(drover.sub_registry_with_prefix("broker")),
            )
            .await?;
            (broker.bootstrap(), Some(broker))
        }
    };
    let result = serve(
        &args, &data_dir, listener, registry, process, &kafka, &broker, guard, audit_rx,
    )
    .await;
    if let Some(broker) = broker {
        broker.stop().await;
    }
    if result.is_ok() {
        eprintln!("drover stopped");
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    args: &UpArgs,
    data_dir: &std::path::Path,
    listener: TcpListener,
    mut registry: Registry,
    process: ProcessMetrics,
    kafka: &str,
    broker: &Option<EmbeddedBroker>,
    guard: drover_auth::Guard,
    audit_rx: tokio::sync::mpsc::UnboundedReceiver<drover_schema::Event>,
) -> anyhow::Result<()> {
    // The gateway follows the local master: without the scheduler it has nothing to route.
    let gateway_listener = if args.no_gateway || args.no_scheduler {
        None
    } else {
        Some(bind_gateway(args.gateway, "--gateway").await?)
    };
    admin::ensure_topics(
        kafka,
        &admin::default_topics_with(
            args.partitions,
            &crate::broker_cmd::topic_retention(&args.topic_retention),
        ),
    )
    .await
    .context("failed to create Drover's topics")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Where this process's own components reach its API: the HTTP address, or with TLS a
    // loopback port of their own (see below).
    let internal_listener = if http::tls_on() {
        Some(
            TcpListener::bind("127.0.0.1:0")
                .await
                .context("cannot bind the internal HTTP port")?,
        )
    } else {
        None
    };
    let internal_http: SocketAddr = match &internal_listener {
        Some(l) => l
            .local_addr()
            .context("cannot read the internal HTTP port")?,
        None => args.http,
    };
    let scheme = if http::tls_on() { "https" } else { "http" };
    // The audit trail of writes also goes to drover.events.v1.
    let audit_events =
        crate::events::spawn_publisher(kafka, "drover-audit", audit_rx, stop_tx.subscribe())?;
    // One Docker client for the collector and the local agent.
    let docker = crate::docker::connect(&args.collector.docker).await?;
    let collector = (!args.no_collector).then(|| {
        let metrics = CollectorMetrics::register(
            registry
                .sub_registry_with_prefix("drover")
                .sub_registry_with_prefix("collector"),
        );
        let cfg = args.collector.config(kafka, data_dir.join("collector"));
        let docker = docker.clone();
        tokio::spawn(async move {
            if let Err(e) = drover_collector::run(cfg, docker, metrics, stop_rx).await {
                tracing::error!(error = %e, "the collector stopped");
            }
        })
    });
    // Each component merges its own API routes here (already bound to its own state).
    let mut extra = axum::Router::new();
    let logs_dir = data_dir.join("logs");
    let logpipe = if args.no_logpipe {
        None
    } else {
        Some(RunningLogpipe::start(
            &args.logpipe,
            kafka,
            &logs_dir,
            registry
                .sub_registry_with_prefix("drover")
                .sub_registry_with_prefix("logpipe"),
        )?)
    };
    let search = match &logpipe {
        Some(p) => p.search.clone(),
        None => drover_search::Search::new(Arc::new(
            drover_search::LogStore::open(&logs_dir).context("cannot open the log index")?,
        )),
    };
    extra = extra.merge(drover_search::api::router(search.clone()));
    let metrics_store = if args.no_metrics_store {
        None
    } else {
        let m = RunningMetricsStore::start(
            &args.metrics,
            kafka,
            &data_dir.join("metrics"),
            registry
                .sub_registry_with_prefix("drover")
                .sub_registry_with_prefix("metrics_store"),
        )?;
        extra = extra.merge(drover_metrics::api::router(Arc::clone(&m.store)));
        Some(m)
    };
    let scheduler = if args.no_scheduler {
        None
    } else {
        let master = args.master.open(data_dir, &mut registry)?;
        let looped = tokio::spawn(
            master
                .clone()
                .run(args.master.reconcile_interval, stop_tx.subscribe()),
        );
        let agent_cfg = args.agent.config(
            &scheduler_cmd::local_master_url(internal_http),
            &args.collector.docker,
        );
        let node_id = agent_cfg.node_id.clone();
        let agent = scheduler_cmd::spawn_agent(
            agent_cfg,
            docker.clone(),
            &mut registry,
            stop_tx.subscribe(),
        );
        // Scheduler events also go to Kafka (drover.events.v1) for any consumer.
        let _events = drover_scheduler::publish::spawn(&master, kafka, stop_tx.subscribe())
            .context("cannot create the scheduler's Kafka producer")?;
        extra = extra.merge(drover_scheduler::api::router(master.clone()));
        Some((looped, agent, node_id, master))
    };
    // The gateway: routes requests to the apps, follows the local master, reports to Kafka.
    let gateway = match gateway_listener {
        Some(l) => {
            let g = RunningGateway::start(
                &args.gateway_opts,
                l,
                &scheduler_cmd::local_master_url(internal_http),
                Some(kafka),
                registry
                    .sub_registry_with_prefix("drover")
                    .sub_registry_with_prefix("gateway"),
                stop_tx.subscribe(),
            )?;
            extra = extra.merge(g.gateway.router());
            Some(g)
        }
        None => None,
    };
    // Alertman reads the metrics store and the log index in this process.
    let alertman = if args.no_alertman {
        None
    } else {
        let source = drover_alertman::source::InProcess {
            metrics: metrics_store.as_ref().map(|m| Arc::clone(&m.store)),
            search: Some(search.clone()),
        };
        let mut cfg = args.alertman.config(
            data_dir.join("alertman"),
            &format!("{scheme}://{}", args.http),
        );
        if !args.no_scheduler {
            // Actions (remove_instance, remove_node) go through the local master's API.
            cfg.actuator = Some(Arc::new(
                drover_alertman::actions::SchedulerActuator::new(&scheduler_cmd::local_master_url(
                    internal_http,
                ))
                .map_err(|e| anyhow::anyhow!("cannot create Alertman's scheduler client: {e}"))?,
            ));
        }
        let a = RunningAlertman::start(
            cfg,
            Arc::new(source),
            Some(kafka),
            registry
                .sub_registry_with_prefix("drover")
                .sub_registry_with_prefix("alertman"),
            stop_tx.subscribe(),
        )?;
        extra = extra.merge(drover_alertman::api::router(a.alertman.clone()));
        Some(a)
    };
    // The autoscaler reads the metrics store's API and scales through the master's, both
    // on this server (so `drover autoscaler` alone runs the same code over the network).
    let autoscaler = if args.no_autoscaler || args.no_scheduler {
        None
    } else {
        let a = RunningAutoscaler::start(
            &args.autoscaler,
            &format!("http://{internal_http}"),
            &scheduler_cmd::local_master_url(internal_http),
            Some(kafka),
            registry
                .sub_registry_with_prefix("drover")
                .sub_registry_with_prefix("autoscaler"),
            stop_tx.subscribe(),
        )?;
        extra = extra.merge(drover_autoscaler::api::router(a.autoscaler.clone()));
        Some(a)
    };
    // The web UI at /, told which parts this server has.
    extra = extra.merge(drover_dashboards::router(drover_dashboards::UiConfig {
        logs: true,
        metrics: !args.no_metrics_store,
        scheduler: !args.no_scheduler,
        gateway: gateway.is_some(),
        alerts: !args.no_alertman,
        autoscaler: autoscaler.is_some(),
        ..drover_dashboards::UiConfig::all()
    }));
    let state = AppState {
        registry: Arc::new(registry),
        process,
        kafka: kafka.to_string(),
        broker: broker.as_ref().map(EmbeddedBroker::status),
        guard: guard.clone(),
    };
    let broker_line = match broker {
        Some(b) => format!("{kafka} (embedded broker, log {})", b.log_path().display()),
        None => format!("{kafka} (external cluster)"),
    };
    println!("drover is up");
    println!(
        "  ui          {scheme}://{}/   (logs, apps, nodes, events)",
        args.http
    );
    println!("  kafka       {broker_line}");
    println!("  data dir    {}", data_dir.display());
    println!(
        "  auth        {}",
        match guard.health() {
            "on" => "on (tokens: drover token ls; audit: drover audit)".to_string(),
            "off" => "off: loopback and no token yet (drover token create --role admin --name NAME turns it on)".to_string(),
            other => format!("{other}: every API is open to anyone who can reach {}", args.http),
        }
    );
    if !args.no_collector {
        println!(
            "  collector   this machine's containers → {}",
            drover_schema::topics::LOGS
        );
    }
    if !args.no_logpipe {
        println!(
            "  log search  http://{}/api/logs/search?q=error   (drover logs search QUERY)",
            args.http
        );
    }
    if !args.no_metrics_store {
        println!(
            "  metrics     http://{}/api/metrics/query?metric=cpu_pct&by=app   (drover metrics query --metric cpu_pct)",
            args.http
        );
    }
    if let Some((_, _, node, _)) = &scheduler {
        println!(
            "  scheduler   http://{}/v2/apps (Marathon API; drover app deploy FILE), local node {node}",
            args.http
        );
    }
    if gateway.is_some() {
        println!(
            "  gateway     http://{}/   (routes: drover gateway routes; label apps with drover.gateway.host)",
            args.gateway
        );
    }
    if let Some(a) = &alertman {
        let cfg = a.alertman.config();
        println!(
            "  alertman    http://{}/api/alerts   {} rule(s), {} receiver(s) (drover alerts ls; amtool --alertmanager.url=http://{})",
            args.http,
            cfg.rules.len(),
            cfg.receivers.len(),
            args.http
        );
    }
    if let Some(a) = &autoscaler {
        println!(
            "  autoscaler  http://{}/api/autoscaler/policies   {} polic(ies) (drover autoscale policies; drover autoscale explain APP)",
            args.http,
            a.autoscaler.policies().len()
        );
    }
    let demo = args.demo.then(|| {
        let base = scheduler_cmd::local_master_url(internal_http);
        println!(
            "  demo        deploying {} ({}) with a little traffic: open http://{}/#/app{}",
            crate::demo::APP_ID,
            args.demo_image,
            args.http,
            crate::demo::APP_ID
        );
        crate::demo::spawn(base, args.demo_image.clone(), stop_tx.subscribe())
    });
    println!("press Ctrl-C to stop");
    let app = http::app_with(state, extra);
    // With TLS, this process's own components call the same router over a loopback port of
    // their own (plain HTTP, still behind the guard: they send the internal token).
    let internal_server = internal_listener.map(|l| {
        let app = app.clone();
        let mut stop = stop_tx.subscribe();
        tokio::spawn(async move {
            let _ = axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        })
    });
    let served = http::serve(listener, app, {
        // Open /v2/events streams end with the shutdown instead of holding it up.
        let master = scheduler.as_ref().map(|s| s.3.clone());
        async move {
            shutdown_signal().await;
            if let Some(m) = master {
                m.close_event_streams();
            }
        }
    })
    .await;
    let _ = stop_tx.send(true);
    let _ = audit_events.await;
    if let Some(s) = internal_server {
        let _ = s.await;
    }
    if let Some(d) = demo {
        let _ = d.await;
    }
    if let Some(g) = gateway {
        g.wait().await;
    }
    if let Some(c) = collector {
        let _ = c.await;
    }
    if let Some((looped, agent, _, _)) = scheduler {
        let _ = looped.await;
        let _ = agent.await;
    }
    if let Some(p) = logpipe {
        p.stop().await;
    }
    if let Some(a) = alertman {
        a.stop().await;
    }
    if let Some(a) = autoscaler {
        a.stop().await;
    }
    if let Some(m) = metrics_store {
        m.stop().await;
    }
    served
}
