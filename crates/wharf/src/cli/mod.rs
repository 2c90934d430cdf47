//! The command line: `serve`, `migrate`, `user create`, `token create|invalidate`, `publisher
//! add|list|remove`, `audit verify|export|prune`, `gc`. Other tooling depends on these commands and their output; keep them stable.

use std::future::IntoFuture;
use std::io::BufRead;

use clap::{Parser, Subcommand};

pub mod admin;
pub mod audit;
pub mod publisher;

use crate::accounts::{self, NewUser};
use crate::config::{Settings, SettingsArgs};
use crate::events::RequestMeta;
use crate::packaging;
use crate::state::AppState;
use crate::tokens::{self, TokenScope};

#[derive(Debug, Parser)]
#[command(name = "wharf", version = crate::VERSION, about = "A Python package index server")]
pub struct Cli {
    #[command(flatten)]
    pub settings: SettingsArgs,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the index (migrations run first).
    Serve {
        /// Address to listen on [default: 127.0.0.1:8000].
        #[arg(long)]
        bind: Option<String>,
    },
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Delete or transfer projects (as an admin).
    Project {
        #[command(subcommand)]
        command: admin::ProjectCommand,
    },
    /// The upstream index's projects (`upstream_url`): block or unblock them.
    Proxy {
        #[command(subcommand)]
        command: admin::ProxyCommand,
    },
    /// Trusted publishers: the CI workflows that may publish a project without a stored token.
    Publisher {
        #[command(subcommand)]
        command: publisher::PublisherCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit log: check its hash chain, export it, prune it.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Remove blobs no file refers to (deleted files, uploads that never committed) and
    /// temporary files a crash left behind; prints one line per removal.
    Gc {
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Back up the index while it runs: database snapshot, files, server key, audit head and
    /// a manifest, into a new directory; or re-check a backup with --verify.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["output", "verify"])))]
    Backup {
        /// The directory to write the backup to (must not exist, or be empty).
        #[arg(long, value_name = "PATH")]
        output: Option<std::path::PathBuf>,
        /// Re-check every part of the backup at PATH against its manifest (exit 1 if damaged).
        #[arg(long, value_name = "PATH")]
        verify: Option<std::path::PathBuf>,
    },
    /// Restore a backup into --data-dir (and the configured database and storage), then check
    /// the audit chain and every file.
    Restore {
        /// The backup directory.
        path: std::path::PathBuf,
        /// Restore into a data directory, database or storage that is not empty.
        #[arg(long)]
        force: bool,
    },
    /// Bring an existing index in: a directory of wheels and sdists (such as pypiserver's),
    /// another index's Simple API, or a devpi index. Each file is checked as an upload.
    #[command(group(clap::ArgGroup::new("source").required(true).args(["dir", "from_simple", "from_devpi"])))]
    Import {
        /// A directory searched for wheels and sdists (pypiserver's packages directory).
        dir: Option<std::path::PathBuf>,
        /// A PEP 691 / PEP 503 index, e.g. https://other.example/simple/.
        #[arg(long, value_name = "URL")]
        from_simple: Option<String>,
        /// A devpi index: URL/USER/INDEX, e.g. http://devpi.example/root/pypi.
        #[arg(long, value_name = "URL")]
        from_devpi: Option<String>,
        /// The user who uploads the files and owns the projects it creates.
        #[arg(long)]
        owner: String,
        /// Files checked and stored at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain; report the first altered, removed or reordered event, or a chain
    /// that no longer reaches its signed head (exit 1).
    Verify {
        /// Also require the chain to reach this head: SEQ:HASH from a log line
        /// "audit head seq=… hash=…" (kept where the database's writers cannot change it).
        #[arg(long, value_name = "SEQ:HASH")]
        head: Option<String>,
    },
    /// Write events as JSON Lines on standard output, oldest first.
    Export {
        /// Only events at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Only events before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Only events of this user (username).
        #[arg(long)]
        user: Option<String>,
        /// Only events of this project and its files.
        #[arg(long)]
        project: Option<String>,
    },
    /// Delete events older than `audit_retention_days` (or --days), keeping the chain
    /// verifiable with a signed checkpoint.
    Prune {
        #[arg(long)]
        days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user with a verified e-mail address; the password is read from standard input.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        admin: bool,
    },
    /// E-mail an invitation to register (single use, for that address, valid 7 days).
    Invite { email: String },
    #[command(flatten)]
    Admin(admin::UserAdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it, alone, on standard output.
    Create {
        username: String,
        /// Limit the token to this project (repeat for several); default: the whole account.
        #[arg(long = "project")]
        projects: Vec<String>,
        /// Lifetime, such as 30d, 12h or "1week".
        #[arg(long)]
        expires_in: Option<String>,
        /// The token's name (unique per user).
        #[arg(long)]
        description: Option<String>,
        /// A read-only token: it downloads from the index (with `read_access = "users"`) and
        /// can never upload.
        #[arg(long)]
        read_only: bool,
    },
    /// Revoke every token that matches the filters (all of them), in one transaction with an
    /// event per token; each owner is e-mailed once with their tokens and the reason.
    /// Prints one line with the counts.
    Invalidate {
        /// Only this user's tokens.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only the tokens that can upload to this project: those limited to it, and the
        /// account-wide tokens of its collaborators (and read-only tokens limited to it).
        #[arg(long, value_name = "NAME")]
        project: Option<String>,
        /// Only tokens created before this time: RFC 3339, or YYYY-MM-DD (midnight UTC).
        #[arg(long, value_name = "DATE")]
        created_before: Option<String>,
        /// Every token of the index (instead of the filters).
        #[arg(long)]
        all: bool,
        /// Why: recorded with each token's event and e-mailed to the owners.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Count what would be revoked; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The settings the command runs with (flags, `WHARF_*`, config file, defaults), loaded
/// before logging starts so that `log_format` applies from the first line.
pub fn settings(cli: &Cli) -> anyhow::Result<Settings> {
    let bind = match &cli.command {
        Command::Serve { bind } => bind.as_deref(),
        _ => None,
    };
    Settings::load(&cli.settings, bind)
}

pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { .. } => serve(settings).await,
        Command::Migrate => {
            let state = AppState::open(settings).await?;
            state.db.close().await;
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    email,
                    admin,
                },
        } => {
            let password = read_password()?;
            let state = AppState::open(settings).await?;
            let new = NewUser {
                username: &username,
                email: &email,
                password: &password,
                is_admin: admin,
                email_verified: true,
            };
            let result =
                accounts::create_user(&state.db, &new, &cli_meta(), state.clock.now_micros()).await;
            state.db.close().await;
            result?;
            Ok(())
        }
        Command::User {
            command: UserCommand::Invite { email },
        } => {
            let state = AppState::open(settings).await?;
            let result = invite(&state, &email).await;
            state.db.close().await;
            let invitation = result?;
            println!(
                "sent an invitation to {} (valid until {})",
                invitation.email,
                crate::clock::iso8601_seconds(invitation.expires)
            );
            Ok(())
        }
        Command::User {
            command: UserCommand::Admin(command),
        } => {
            let state = AppState::open(settings).await?;
            let result = admin::run_user(&state, command).await;
            state.db.close().await;
            for line in result? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Project { command } => {
            let state = AppState::open(settings).await?;
            let result = admin::run_project(&state, command).await;
            state.db.close().await;
            for line in result? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Publisher { command } => {
            let state = AppState::open(settings).await?;
            let result = publisher::run(&state, command).await;
            state.db.close().await;
            for line in result? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Proxy { command } => {
            let state = AppState::open(settings).await?;
            let result = admin::run_proxy(&state, command).await;
            state.db.close().await;
            for line in result? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    username,
                    projects,
                    expires_in,
                    description,
                    read_only,
                },
        } => {
            let expires_in = expires_in
                .map(|d| {
                    humantime::parse_duration(&d)
                        .map_err(|e| anyhow::anyhow!("invalid --expires-in '{d}': {e}"))
                        .map(|d| d.as_secs() as i64)
                })
                .transpose()?;
            let state = AppState::open(settings).await?;
            let scope = (projects.as_slice(), expires_in, read_only);
            let result = create_token(&state, &username, scope, description).await;
            state.db.close().await;
            println!("{}", result?);
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Invalidate {
                    user,
                    project,
                    created_before,
                    all,
                    reason,
                    dry_run,
                },
        } => {
            let filters = crate::admin::actions::TokenFilters {
                user: user.unwrap_or_default(),
                project: project.unwrap_or_default(),
                created_before: created_before.unwrap_or_default(),
                all,
            };
            let state = AppState::open(settings).await?;
            let reason = reason.unwrap_or_default();
            let result = admin::invalidate_tokens(&state, &filters, &reason, dry_run).await;
            state.db.close().await;
            println!("{}", result?);
            Ok(())
        }
        Command::Audit { command } => {
            let state = AppState::open(settings).await?;
            let result = audit::run(&state, command).await;
            state.db.close().await;
            result
        }
        Command::Gc { dry_run } => {
            let state = AppState::open(settings).await?;
            let tmp_dir = state.settings.tmp_dir();
            let result = packaging::blobs::gc(&state.db, &state.storage, &tmp_dir, dry_run).await;
            state.db.close().await;
            let report = result?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for path in &report.queued {
                println!("{verb} deleted file's blob {path}");
            }
            for path in &report.unreferenced {
                println!("{verb} unreferenced blob {path}");
            }
            for path in &report.leftovers {
                println!("{verb} temporary file {path}");
            }
            Ok(())
        }
        Command::Backup { output, verify } => match (output, verify) {
            (_, Some(path)) => crate::backup::run_verify(&path).await,
            (Some(path), None) => crate::backup::run_create(&settings, &path).await,
            (None, None) => anyhow::bail!("give --output PATH or --verify PATH"),
        },
        Command::Restore { path, force } => {
            crate::backup::run_restore(settings, &path, force).await
        }
        Command::Import {
            dir,
            from_simple,
            from_devpi,
            owner,
            jobs,
        } => {
            let source = crate::import::Source::from_args(dir, from_simple, from_devpi)?;
            crate::import::run(settings, source, &owner, jobs).await
        }
    }
}

pub(crate) fn cli_meta() -> RequestMeta {
    RequestMeta {
        ip_address: None,
        user_agent: Some(format!("wharf-cli/{}", env!("CARGO_PKG_VERSION"))),
    }
}

async fn invite(
    state: &AppState,
    email: &str,
) -> anyhow::Result<accounts::invitations::Invitation> {
    if state.settings.registration == crate::config::Registration::Closed {
        anyhow::bail!(
            "registration is closed: invitations cannot be used (set registration = \"invite\")"
        );
    }
    let base_url = state.settings.base_url();
    let sender = accounts::invitations::Sender {
        keys: &state.keys,
        mailer: &state.mailer,
        base_url: &base_url,
        domains: &state.settings.registration_email_domains,
    };
    Ok(accounts::invitations::send(
        &state.db,
        &sender,
        email,
        None,
        &cli_meta(),
        state.clock.now_micros(),
    )
    .await?)
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password given on standard input");
    }
    Ok(password)
}

async fn create_token(
    state: &AppState,
    username: &str,
    (project_names, expires_in, read_only): (&[String], Option<i64>, bool),
    description: Option<String>,
) -> anyhow::Result<String> {
    let user = accounts::find_by_username(&state.db, username)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user named '{username}'"))?;
    let mut projects = Vec::new();
    for name in project_names {
        let normalized = wharf_packaging::name::normalize(name);
        let project = packaging::find_project(&state.db, &normalized)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no project named '{name}'"))?;
        if packaging::role_of(&state.db, &project.id, &user.id)
            .await?
            .is_none()
        {
            anyhow::bail!(
                "user '{username}' has no role on project '{}'",
                project.name
            );
        }
        if !projects.contains(&project) {
            projects.push(project);
        }
    }
    let description = description.unwrap_or_else(|| {
        format!(
            "CLI token {}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    });
    let scope = TokenScope {
        projects: &projects,
        expires_in,
        read_only,
    };
    let token = tokens::create(
        &tokens::Issuer::of(state, &state.settings.token_location()),
        &user,
        &description,
        &scope,
        &cli_meta(),
        state.clock.now_micros(),
    )
    .await?;
    tokens::notify_created(state, &user.id, &description, &cli_meta()).await;
    Ok(token)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let bind = settings.bind.clone();
    let socket = std::net::TcpListener::bind(&bind)
        .and_then(|socket| socket.set_nonblocking(true).map(|()| socket))
        .map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    // Two listeners on the one socket: the starting router answers 503 on every path while
    // the database migrates, then the index takes over the same socket.
    let starting_socket = tokio::net::TcpListener::from_std(socket.try_clone()?)?;
    let listener = tokio::net::TcpListener::from_std(socket)?;
    let address = listener.local_addr()?;
    tracing::info!("wharf listening on http://{address}; opening the database");
    let (opened, open_rx) = tokio::sync::oneshot::channel::<()>();
    let starting = tokio::spawn(
        axum::serve(starting_socket, crate::router::starting())
            .with_graceful_shutdown(async move {
                let _ = open_rx.await;
            })
            .into_future(),
    );
    let state = AppState::open(settings).await;
    let _ = opened.send(());
    // The starting router only answers 503: a client holding a connection to it open (a
    // half-sent request) must not keep the index from taking over.
    let abort = starting.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(2), starting)
        .await
        .is_err()
    {
        abort.abort();
    }
    let state = state?;
    crate::tasks::spawn_all(&state);
    if state.settings.metrics_token.is_none() {
        tracing::info!(
            "/metrics is open to anyone (aggregate figures only): set metrics_token to require a bearer token"
        );
    }
    tracing::info!("wharf is ready on http://{address}");
    let router = crate::router::router(state.clone());
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let lifecycle = state.lifecycle.clone();
    let grace = state.settings.shutdown_grace.0;
    let delay = state.settings.shutdown_delay.0;
    let limits = crate::server::Limits {
        header_timeout: state.settings.header_timeout.0,
        max_connections: state.settings.max_connections,
    };
    let server = crate::server::run(listener, router, limits, async move {
        shutdown_signal().await;
        lifecycle.start_draining();
        if !delay.is_zero() {
            tracing::info!(
                delay_secs = delay.as_secs_f64(),
                "draining: /_ready answers 503; still accepting for the shutdown delay"
            );
            tokio::time::sleep(delay).await;
        }
        tracing::info!(
            in_flight = lifecycle.in_flight(),
            grace_secs = grace.as_secs_f64(),
            "stopping: no new connections; finishing the requests in flight"
        );
        let _ = stopping_tx.send(true);
    });
    let grace_over = async move {
        let _ = stopping.wait_for(|stopping| *stopping).await;
        tokio::time::sleep(grace).await;
    };
    let served = tokio::select! {
        served = server => Some(served),
        () = grace_over => None,
    };
    // The last requests' access lines before the lines that say the server stops.
    crate::observe::flush_access_log();
    match served {
        Some(()) => {
            tracing::info!("every request finished");
        }
        None => {
            tracing::warn!(
                in_flight = state.lifecycle.in_flight(),
                "the shutdown grace is over: the requests still in flight are cut off"
            );
        }
    }
    // A request cut off may still hold a connection: closing the pool waits only so long.
    if tokio::time::timeout(std::time::Duration::from_secs(5), state.db.close())
        .await
        .is_err()
    {
        tracing::warn!("the database connections did not close within 5 s");
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
