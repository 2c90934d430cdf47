//! `wharf user list|show|set-admin|disable|enable|reset-2fa`, `wharf project
//! delete|transfer` and `wharf token invalidate`: the admin actions of `admin::actions` from
//! the server's shell. Each returns the lines it prints; a failure is one line (the error).

use clap::Subcommand;

use crate::accounts::directory::{self, UserQuery, UserSummary};
use crate::admin::actions::{self, AdminActor, Run, TokenFilters, counted};
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum UserAdminCommand {
    /// One line per user: name, e-mail, created, last sign-in, 2FA methods, flags.
    List {
        /// Only admins.
        #[arg(long)]
        admins: bool,
        /// Only disabled accounts.
        #[arg(long)]
        disabled: bool,
    },
    /// A user's account: addresses, dates, 2FA methods, flags, projects and tokens.
    Show { username: String },
    /// Make the user an admin (or, with --off, no longer one).
    SetAdmin {
        username: String,
        #[arg(long)]
        off: bool,
    },
    /// Disable the account: no sign-in, sessions end, tokens refused; nothing is deleted.
    Disable { username: String },
    /// Enable a disabled account again.
    Enable { username: String },
    /// Remove the user's TOTP, security keys, passkeys and recovery codes (after checking who
    /// they are outside wharf); the user is told by e-mail.
    #[command(name = "reset-2fa")]
    Reset2fa { username: String },
    /// Link an identity provider's account (its subject, `sub`) to the user, who can then
    /// sign in with it (after checking who they are outside wharf).
    #[command(name = "link-sso")]
    LinkSso {
        username: String,
        /// The provider's name in the `sso` setting.
        #[arg(long)]
        provider: String,
        /// The person's subject at the provider (the ID token's `sub`).
        #[arg(long)]
        subject: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Delete a project with its releases and files.
    Delete { name: String },
    /// Make USER the only Owner of the project (every other role ends).
    Transfer {
        name: String,
        #[arg(long = "to", value_name = "USER")]
        to: String,
    },
    /// Claim a name for a project of this index: it is no longer looked up upstream, and an
    /// upload may create it (a name served from the upstream may not be taken otherwise).
    Claim { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// Stop serving an upstream project (NAME) or one of its versions (NAME==VERSION), even
    /// from the cache.
    Block {
        #[arg(value_name = "NAME[==VERSION]")]
        target: String,
        /// Why: shown to whoever asks for a blocked file, and kept in the audit log.
        #[arg(long)]
        reason: String,
    },
    /// Lift a block.
    Unblock {
        #[arg(value_name = "NAME[==VERSION]")]
        target: String,
    },
    /// The blocks, one per line: target, reason, who, when.
    Blocks,
}

fn when(micros: Option<i64>) -> String {
    micros.map_or_else(|| "never".to_owned(), crate::clock::iso8601_seconds)
}

fn line(user: &UserSummary) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}\t{}",
        user.username,
        if user.email.is_empty() {
            "-"
        } else {
            &user.email
        },
        when(Some(user.created)),
        when(user.last_login),
        user.two_factor_methods(),
        user.flags()
    )
}

pub async fn run_user(state: &AppState, command: UserAdminCommand) -> anyhow::Result<Vec<String>> {
    let meta = super::cli_meta();
    let actor = AdminActor::command_line(&meta, state.clock.now_micros());
    let deps = state.into();
    Ok(match command {
        UserAdminCommand::LinkSso {
            username,
            provider,
            subject,
        } => {
            if state.sso.provider(&provider).is_none() {
                anyhow::bail!("no provider named '{provider}' in the sso setting");
            }
            let subject = subject.trim();
            if subject.is_empty() || subject.len() > 255 {
                anyhow::bail!("give the subject as the provider's ID tokens name it (sub)");
            }
            let user = crate::accounts::find_by_username(&state.db, &username)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user named '{username}'"))?;
            let issuer = state
                .sso
                .provider(&provider)
                .map(|p| p.issuer.as_str().to_owned())
                .unwrap_or_default();
            let identity = crate::accounts::sso::Identity {
                provider: provider.clone(),
                issuer,
                subject: subject.to_owned(),
                email: String::new(),
                email_verified: false,
                proposed_username: String::new(),
                mfa: false,
                auth_time: None,
            };
            let mut conn = state.db.pool().acquire().await?;
            let linked = crate::accounts::sso::link(
                &mut conn,
                &identity,
                &user.id,
                "command line",
                &meta,
                state.clock.now_micros(),
            )
            .await?;
            if !linked {
                anyhow::bail!(
                    "{subject} of {provider} is linked already, or {} has an account of {provider} already",
                    user.username
                );
            }
            crate::accounts::sso::notify_linked(
                &state.mailer,
                &state.db,
                &user,
                &provider,
                "by an administrator",
                &meta,
                state.clock.now_micros(),
            )
            .await;
            vec![format!(
                "linked {subject} of {provider} to {}",
                user.username
            )]
        }
        UserAdminCommand::List { admins, disabled } => {
            let query = UserQuery {
                search: String::new(),
                admins_only: admins,
                disabled_only: disabled,
            };
            let (users, _) = directory::list(&state.db, &query, i64::MAX, 0).await?;
            users.iter().map(line).collect()
        }
        UserAdminCommand::Show { username } => {
            let user = directory::summary(&state.db, &username)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user named '{username}'"))?;
            let mut lines = vec![
                format!("username: {}", user.username),
                format!(
                    "email: {}",
                    if user.email.is_empty() {
                        "-"
                    } else {
                        &user.email
                    }
                ),
                format!("created: {}", when(Some(user.created))),
                format!("last sign-in: {}", when(user.last_login)),
                format!("2fa: {}", user.two_factor_methods()),
                format!("flags: {}", user.flags()),
            ];
            for email in crate::accounts::emails(&state.db, &user.id).await? {
                lines.push(format!(
                    "address: {}{}{}",
                    email.email,
                    if email.primary { " (primary)" } else { "" },
                    if email.verified { "" } else { " (unverified)" }
                ));
            }
            for project in crate::packaging::roles::projects_of_user(&state.db, &user.id).await? {
                lines.push(format!("project: {} ({})", project.name, project.role));
            }
            for token in crate::tokens::list_for_user(&state.db, &user.id).await? {
                lines.push(format!(
                    "token: {} (created {}, last used {})",
                    token.description,
                    when(Some(token.created)),
                    when(token.last_used)
                ));
            }
            lines
        }
        UserAdminCommand::SetAdmin { username, off } => {
            let user = actions::set_admin(deps, &actor, &username, !off).await?;
            let now = if off {
                "no longer an admin"
            } else {
                "an admin"
            };
            vec![format!("{} is {now}", user.username)]
        }
        UserAdminCommand::Disable { username } => {
            let user = actions::set_active(deps, &actor, &username, false).await?;
            vec![format!("{} is disabled", user.username)]
        }
        UserAdminCommand::Enable { username } => {
            let user = actions::set_active(deps, &actor, &username, true).await?;
            vec![format!("{} is enabled", user.username)]
        }
        UserAdminCommand::Reset2fa { username } => {
            let reset = actions::reset_two_factor(deps, &actor, &username).await?;
            vec![format!(
                "removed from {}: totp {}, {} security keys and passkeys, {} recovery codes",
                username.trim(),
                if reset.totp { "yes" } else { "no" },
                reset.webauthn_credentials,
                reset.recovery_codes
            )]
        }
    })
}

pub async fn run_project(state: &AppState, command: ProjectCommand) -> anyhow::Result<Vec<String>> {
    let meta = super::cli_meta();
    let actor = AdminActor::command_line(&meta, state.clock.now_micros());
    let deps = state.into();
    Ok(match command {
        ProjectCommand::Delete { name } => {
            let project = actions::delete_project(deps, &actor, &name).await?;
            state.cache.invalidate_project(&project.normalized_name);
            vec![format!("deleted {}", project.name)]
        }
        ProjectCommand::Transfer { name, to } => {
            let (project, removed) = actions::transfer_project(deps, &actor, &name, &to).await?;
            state.cache.invalidate_project(&project.normalized_name);
            let mut line = format!("{} is owned by {} alone", project.name, to.trim());
            if !removed.is_empty() {
                line.push_str(&format!(" (roles removed: {})", removed.join(", ")));
            }
            vec![line]
        }
        ProjectCommand::Claim { name } => {
            let name = crate::proxy::actions::claim(&state.db, &actor, &name).await?;
            vec![format!(
                "claimed {name}: it is no longer looked up upstream (serving processes stop within upstream_ttl)"
            )]
        }
    })
}

pub async fn run_proxy(state: &AppState, command: ProxyCommand) -> anyhow::Result<Vec<String>> {
    let meta = super::cli_meta();
    let actor = AdminActor::command_line(&meta, state.clock.now_micros());
    Ok(match command {
        ProxyCommand::Block { target, reason } => {
            let what = crate::proxy::actions::block(&state.db, &actor, &target, &reason).await?;
            vec![format!("blocked {what}")]
        }
        ProxyCommand::Unblock { target } => {
            let what = crate::proxy::actions::unblock(&state.db, &actor, &target).await?;
            vec![format!("unblocked {what}")]
        }
        ProxyCommand::Blocks => crate::proxy::store::all_blocks(&state.db)
            .await?
            .into_iter()
            .map(|b| {
                let target = if b.version.is_empty() {
                    b.normalized_name
                } else {
                    format!("{}=={}", b.normalized_name, b.version)
                };
                format!(
                    "{target}\t{}\t{}\t{}",
                    b.reason,
                    b.created_by,
                    crate::clock::iso8601_seconds(b.created)
                )
            })
            .collect(),
    })
}

/// `wharf token invalidate`: the line with the counts.
pub async fn invalidate_tokens(
    state: &AppState,
    filters: &TokenFilters,
    reason: &str,
    dry_run: bool,
) -> anyhow::Result<String> {
    let meta = super::cli_meta();
    let actor = AdminActor::command_line(&meta, state.clock.now_micros());
    let run = if dry_run {
        Run::DryRun
    } else {
        Run::Apply { expected: None }
    };
    let done = actions::invalidate_tokens(state.into(), &actor, filters, reason, run)
        .await
        .map_err(|e| match e {
            // In the command's own words: its flags.
            actions::AdminError::Invalid { field: "filters", .. } if filters.all => anyhow::anyhow!(
                "--all takes every token: not with --user, --project or --created-before"
            ),
            actions::AdminError::Invalid { field: "filters", .. } => anyhow::anyhow!(
                "choose the tokens: --user, --project or --created-before (together, all must match), or --all"
            ),
            actions::AdminError::Invalid { field: "reason", message }
                if reason.trim().is_empty() =>
            {
                anyhow::anyhow!("{}", message.replacen("give a reason", "give --reason TEXT", 1))
            }
            other => other.into(),
        })?;
    let counts = format!(
        "{} of {}",
        counted(done.tokens.len(), "token", "tokens"),
        counted(done.owners, "owner", "owners")
    );
    Ok(if dry_run {
        format!("would invalidate {counts} (dry run: nothing changed)")
    } else {
        format!("invalidated {counts}; each owner was told by e-mail")
    })
}
