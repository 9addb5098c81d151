//! `drover token …` (the token file of a data dir, written directly: it works before any
//! server runs, which is how the first admin token is made) and `drover audit` (a client
//! of `GET /api/audit`).
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use drover_auth::{Role, TokenStore};

use crate::api_client::{self, ClientArgs};

/// `drover token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: only its SHA-256 is stored).
    Create {
        /// What the token may do: admin, operator (writes) or viewer (read only).
        #[arg(long, value_name = "admin|operator|viewer")]
        role: Role,
        /// Its name (who or what uses it: ci, alice).
        #[arg(long, value_name = "NAME")]
        name: String,
        #[command(flatten)]
        dir: DataDir,
        /// Print {"name", "role", "token"} as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the tokens (names and roles; never the tokens).
    Ls {
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: the next request with it (or a UI session made with it) is refused.
    Revoke {
        /// The token's name.
        name: String,
        #[command(flatten)]
        dir: DataDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a new random cluster token (for --cluster-token / DROVER_CLUSTER_TOKEN).
    Generate,
}

/// The data dir of the server whose tokens these are.
#[derive(Debug, Args)]
pub struct DataDir {
    /// The data dir of the `drover up` or `drover master` (tokens in auth/tokens.json).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "./drover-data",
        env = "DROVER_DATA_DIR"
    )]
    pub data_dir: PathBuf,
}

/// Run `drover token …`.
pub fn run_token(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            role,
            name,
            dir,
            json,
        } => {
            let store = TokenStore::in_data_dir(&dir.data_dir);
            let token = store
                .create(&name, role)
                .context("failed to create the token")?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"name": name, "role": role, "token": token})
                );
            } else {
                println!("{token}");
                eprintln!(
                    "token {name:?} ({role}) created in {}; it is shown only now. Use it as `Authorization: Bearer TOKEN`, DROVER_TOKEN=TOKEN for the CLI, or paste it at /login",
                    store.path().display()
                );
            }
        }
        TokenCommand::Ls { dir, json } => {
            let list = TokenStore::in_data_dir(&dir.data_dir).list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no tokens (authentication is off on loopback): drover token create --role admin --name NAME");
            } else {
                println!("{:<24} {:<9} CREATED", "NAME", "ROLE");
                for t in list {
                    println!(
                        "{:<24} {:<9} {}",
                        t.name,
                        t.role.as_str(),
                        t.created.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                }
            }
        }
        TokenCommand::Revoke { name, dir, json } => {
            TokenStore::in_data_dir(&dir.data_dir).revoke(&name)?;
            if json {
                println!("{}", serde_json::json!({"revoked": name}));
            } else {
                println!("token {name:?} revoked");
            }
        }
        TokenCommand::Generate => println!("{}", drover_auth::new_token()?),
    }
    Ok(())
}

/// Options of `drover audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// At most this many records, newest first.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
}

/// Run `drover audit` (needs an admin token in DROVER_TOKEN when auth is on).
pub async fn run_audit(args: AuditArgs) -> anyhow::Result<()> {
    let body = api_client::call(
        &args.client.server,
        reqwest::Method::GET,
        "/api/audit",
        &[("limit", args.limit.to_string())],
        None,
    )
    .await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let recs: Vec<drover_auth::audit::AuditRecord> =
        serde_json::from_value(body).context("unreadable audit records")?;
    if recs.is_empty() {
        println!("no writes recorded since the server started");
    }
    for r in recs {
        println!(
            "{}  {:<6} {:<40} {}  {} ({}) from {}",
            r.ts.format("%Y-%m-%d %H:%M:%S"),
            r.method,
            r.path,
            r.status,
            r.who,
            r.role.as_deref().unwrap_or("-"),
            r.source.as_deref().unwrap_or("?")
        );
    }
    Ok(())
}
