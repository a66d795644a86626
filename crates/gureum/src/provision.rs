//! `gureum provision postgres`: gives a service its own PostgreSQL role and schema (deployment
//! time, with an administrator's connection), so that on a shared database each service
//! reaches only its own tables.

use std::process::ExitCode;

use crate::Error;

/// `gureum provision …`.
#[derive(clap::Subcommand)]
pub enum ProvisionCommand {
    /// Create (or update) the role `gureum_<service>` and the schema `<service>` it owns.
    Postgres(PostgresArgs),
}

/// Arguments of `gureum provision postgres`.
#[derive(clap::Args)]
pub struct PostgresArgs {
    /// An administrator's connection URL.
    #[arg(long, env = "GUREUM_ADMIN_POSTGRES_URL")]
    admin_url: String,
    /// The service (`[a-z_][a-z0-9_]*`).
    #[arg(long)]
    service: String,
}

/// The environment variable holding the service role's password (never a command-line
/// argument: those are visible to every user of the machine).
pub const PASSWORD_ENV: &str = "GUREUM_SERVICE_PASSWORD";

/// Runs `gureum provision`.
pub fn run(command: ProvisionCommand) -> Result<ExitCode, Error> {
    let ProvisionCommand::Postgres(args) = command;
    let password = std::env::var(PASSWORD_ENV)
        .map_err(|_| format!("{PASSWORD_ENV} must hold the password for the service's role"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config = runtime.block_on(store::sql::provision_postgres(
        &args.admin_url,
        &args.service,
        &password,
    ))?;
    let store::SqlConfig::Postgres { url, schema } = config else {
        return Err("provisioning returned a non-PostgreSQL configuration".into());
    };
    let shown = url.replace(&format!(":{password}@"), ":********@");
    println!("role gureum_{} owns schema {schema}", args.service);
    println!("connect the service with {shown} (schema {schema})");
    Ok(ExitCode::SUCCESS)
}
