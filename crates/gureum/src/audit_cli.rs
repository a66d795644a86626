//! `gureum audit verify` and `gureum audit export`: the audit trail of a data folder (`gureum
//! up`'s, or an edge's `data_dir`) or of a PostgreSQL schema, checked link by link or written
//! out as JSON Lines.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::Error;

/// Where the trail is.
#[derive(clap::Args, Clone)]
pub struct TrailArgs {
    /// The data folder holding `audit.sqlite`.
    #[arg(long, default_value = crate::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Instead: a PostgreSQL database (the split shape's edge), e.g.
    /// postgres://auditor@db:5432/gureum.
    #[arg(long, env = "GUREUM_AUDIT_DATABASE_URL", hide_env_values = true)]
    database: Option<String>,
    /// The schema with --database (the edge's).
    #[arg(long, default_value = "edge")]
    schema: String,
}

impl TrailArgs {
    fn config(&self) -> store::SqlConfig {
        match &self.database {
            Some(url) => store::SqlConfig::Postgres {
                url: url.clone(),
                schema: self.schema.clone(),
            },
            None => store::SqlConfig::Sqlite {
                path: self.data_dir.join(crate::server::AUDIT_FILE),
            },
        }
    }
}

/// `gureum audit …`.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Check every link of the chain: any edited, deleted or reordered entry is found.
    Verify {
        #[command(flatten)]
        trail: TrailArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the entries as JSON Lines (one entry a line, oldest first) to stdout.
    Export {
        #[command(flatten)]
        trail: TrailArgs,
    },
}

/// Runs `gureum audit …`.
pub fn run(command: AuditCommand) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match command {
            AuditCommand::Verify { trail, json } => verify(&trail, json).await,
            AuditCommand::Export { trail } => export(&trail).await,
        }
    })
}

async fn open(trail: &TrailArgs) -> Result<audit::log::AuditLog, Error> {
    if trail.database.is_none() {
        let file = trail.data_dir.join(crate::server::AUDIT_FILE);
        if !file.exists() {
            return Err(format!("{} does not exist: no audit trail there", file.display()).into());
        }
    }
    let store = store::Store::open(&trail.config()).await?;
    Ok(audit::log::AuditLog::open(store).await?)
}

async fn verify(trail: &TrailArgs, json: bool) -> Result<ExitCode, Error> {
    let log = open(trail).await?;
    match log.verify().await? {
        Ok(verified) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "entries": verified.entries, "head": verified.head})
                );
            } else {
                println!(
                    "audit trail intact: {} entries; head {} (keep it elsewhere to detect a cut-off tail)",
                    verified.entries, verified.head
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(broken) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "seq": broken.seq, "problem": broken.problem})
                );
            } else {
                eprintln!(
                    "audit trail BROKEN at entry {}: {}",
                    broken.seq, broken.problem
                );
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn export(trail: &TrailArgs) -> Result<ExitCode, Error> {
    let log = open(trail).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed: Option<Error> = None;
    let scanned = log
        .scan(|stored| {
            let entry = audit::log::entry(stored)?;
            if failed.is_none()
                && let Err(e) = serde_json::to_writer(&mut out, &entry)
                    .map_err(Error::from)
                    .and_then(|()| out.write_all(b"\n").map_err(Error::from))
            {
                failed = Some(e);
            }
            Ok::<(), audit::log::AuditError>(())
        })
        .await;
    scanned?;
    if let Some(e) = failed {
        return Err(e);
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
