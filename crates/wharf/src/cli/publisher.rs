//! `wharf publisher add|list|remove`: the trusted publishers of a project, from the server's
//! shell (each change is an event, as from the web). Each returns the lines it prints; a
//! failure is one line (the error).

use std::collections::BTreeMap;

use clap::Subcommand;

use crate::config::trusted_publishing::GenericIssuer;
use crate::oidc::claims::{Kind, Publisher};
use crate::oidc::pending::Pending;
use crate::oidc::publishers::{self, By, NewPublisher};
use crate::packaging;
use crate::state::AppState;

// Parsed once per process: the size of its largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum PublisherCommand {
    /// Let a GitHub Actions workflow, a GitLab CI pipeline, a Google Cloud service account or
    /// a job of a generic issuer publish PROJECT; prints the new publisher's id and what it
    /// matches.
    #[command(group(clap::ArgGroup::new("kind").required(true).args(["github", "gitlab", "google", "generic"])))]
    Add {
        project: String,
        /// A GitHub repository, OWNER/REPOSITORY (as GitHub writes it).
        #[arg(long, value_name = "OWNER/REPO", requires = "workflow")]
        github: Option<String>,
        /// The workflow's file name in .github/workflows/ (such as release.yml).
        #[arg(long, value_name = "FILE", requires = "github")]
        workflow: Option<String>,
        /// GitHub's numeric id of the repository's owner (`repository_owner_id`); unset, it is
        /// pinned at the first publish.
        #[arg(long, value_name = "ID", requires = "github")]
        owner_id: Option<String>,
        /// A GitLab project, NAMESPACE/PROJECT (subgroups allowed).
        #[arg(long, value_name = "NAMESPACE/PROJECT", requires = "ci_config")]
        gitlab: Option<String>,
        /// The CI config file's path in the repository (such as .gitlab-ci.yml).
        #[arg(long, value_name = "PATH", requires = "gitlab")]
        ci_config: Option<String>,
        /// The GitLab instance (one of `trusted_publishing.gitlab_issuers`) [default:
        /// https://gitlab.com, else the first one configured].
        #[arg(long, value_name = "URL", requires = "gitlab")]
        gitlab_issuer: Option<String>,
        /// A Google Cloud service account's e-mail address.
        #[arg(long, value_name = "EMAIL")]
        google: Option<String>,
        /// Only this subject (the service account's unique id) may publish.
        #[arg(long, value_name = "SUB", requires = "google")]
        subject: Option<String>,
        /// A generic issuer, by its name in `trusted_publishing.generic_issuers`.
        #[arg(long, value_name = "NAME", requires = "claim")]
        generic: Option<String>,
        /// The value of one of the generic issuer's claims, CLAIM=VALUE (once per claim).
        #[arg(long, value_name = "CLAIM=VALUE", requires = "generic")]
        claim: Vec<String>,
        /// Only jobs in this deployment environment may publish (GitHub and GitLab).
        #[arg(long, value_name = "ENV")]
        environment: Option<String>,
        /// PROJECT does not exist yet: the publisher's first exchange creates it, with
        /// --owner as its Owner.
        #[arg(long, requires = "owner")]
        pending: bool,
        /// The user who will own the project a pending publisher creates.
        #[arg(long, value_name = "USER", requires = "pending")]
        owner: Option<String>,
    },
    /// The project's publishers, one per line: id, then what it matches (for a name
    /// without a project, its pending publishers).
    List { project: String },
    /// Stop a publisher from publishing PROJECT (ID from `list`); its tokens stop working.
    /// A pending publisher's id removes it.
    Remove { project: String, id: String },
}

fn pending_line(pending: &Pending, owner: &str) -> String {
    format!(
        "{}\t{}\tpending: creates {} owned by {owner}",
        pending.publisher.id,
        pending.publisher.specifier(),
        pending.project_name
    )
}

async fn owner_name(state: &AppState, user_id: &str) -> anyhow::Result<String> {
    Ok(crate::accounts::find_by_id(&state.db, user_id)
        .await?
        .map(|u| u.username)
        .unwrap_or_else(|| user_id.to_owned()))
}

fn line(publisher: &Publisher) -> String {
    let mut line = format!("{}\t{}", publisher.id, publisher.specifier());
    if publisher.kind == Kind::GitHub {
        match &publisher.owner_id {
            Some(id) => line.push_str(&format!("\towner id {id}")),
            None => line.push_str("\towner id pinned at the first publish"),
        }
    }
    line
}

async fn project(state: &AppState, name: &str) -> anyhow::Result<packaging::Project> {
    let normalized = wharf_packaging::name::normalize(name);
    packaging::find_project(&state.db, &normalized)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no project named '{name}'"))
}

/// `--claim NAME=VALUE` for each claim the generic issuer names, and no other.
fn generic_claims(
    issuer: &GenericIssuer,
    given: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut claims = BTreeMap::new();
    for pair in given {
        let Some((name, value)) = pair.split_once('=') else {
            anyhow::bail!("--claim takes CLAIM=VALUE ({pair:?})");
        };
        let name = name.trim();
        if !issuer.claims.iter().any(|c| c == name) {
            anyhow::bail!(
                "{} publishers are identified by {}; '{name}' is not one of them",
                issuer.name,
                issuer.claims.join(", ")
            );
        }
        claims.insert(name.to_owned(), value.to_owned());
    }
    if let Some(missing) = issuer.claims.iter().find(|c| !claims.contains_key(*c)) {
        anyhow::bail!(
            "give --claim {missing}=VALUE too ({} publishers are identified by {})",
            issuer.name,
            issuer.claims.join(", ")
        );
    }
    Ok(claims)
}

fn split_path(given: &str, what: &str) -> anyhow::Result<(String, String)> {
    let (owner, name) = given
        .trim()
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("{what} must be written with a '/' ({given:?})"))?;
    Ok((owner.to_owned(), name.to_owned()))
}

pub async fn run(state: &AppState, command: PublisherCommand) -> anyhow::Result<Vec<String>> {
    let meta = super::cli_meta();
    let by = By {
        username: None,
        via: "cli",
        meta: &meta,
        now_micros: state.clock.now_micros(),
    };
    Ok(match command {
        PublisherCommand::Add {
            project: name,
            github,
            workflow,
            owner_id,
            gitlab,
            ci_config,
            gitlab_issuer,
            google,
            subject,
            generic,
            claim,
            environment,
            pending,
            owner,
        } => {
            let environment = environment.unwrap_or_default().trim().to_owned();
            let new = match (github, gitlab, google, generic) {
                (None, None, Some(email), None) => NewPublisher {
                    kind: Kind::Google,
                    issuer: state.oidc.google().to_owned(),
                    owner: email,
                    repository: String::new(),
                    workflow: String::new(),
                    environment: String::new(),
                    owner_id: None,
                    claims: subject
                        .map(|sub| BTreeMap::from([("sub".to_owned(), sub)]))
                        .unwrap_or_default(),
                },
                (None, None, None, Some(name)) => {
                    let Some(issuer) = state.oidc.generic_named(&name) else {
                        anyhow::bail!(
                            "no generic issuer named '{name}' in trusted_publishing.generic_issuers"
                        );
                    };
                    NewPublisher {
                        kind: Kind::Generic,
                        issuer: issuer.issuer.as_str().to_owned(),
                        owner: String::new(),
                        repository: String::new(),
                        workflow: String::new(),
                        environment: String::new(),
                        owner_id: None,
                        claims: generic_claims(issuer, &claim)?,
                    }
                }
                (Some(repository), None, None, None) => {
                    let (owner, repository) = split_path(&repository, "--github OWNER/REPO")?;
                    NewPublisher {
                        kind: Kind::GitHub,
                        issuer: state.oidc.github().to_owned(),
                        owner,
                        repository,
                        workflow: workflow.unwrap_or_default(),
                        environment,
                        owner_id,
                        claims: BTreeMap::new(),
                    }
                }
                (None, Some(path), None, None) => {
                    let (namespace, project) = split_path(&path, "--gitlab NAMESPACE/PROJECT")?;
                    let issuer = match gitlab_issuer {
                        Some(issuer) if state.oidc.is_gitlab(&issuer) => issuer,
                        Some(issuer) => anyhow::bail!(
                            "{issuer} is not one of trusted_publishing.gitlab_issuers"
                        ),
                        None => state
                            .oidc
                            .default_gitlab()
                            .ok_or_else(|| {
                                anyhow::anyhow!("trusted_publishing.gitlab_issuers is empty")
                            })?
                            .to_owned(),
                    };
                    NewPublisher {
                        kind: Kind::GitLab,
                        issuer,
                        owner: namespace,
                        repository: project,
                        workflow: ci_config.unwrap_or_default(),
                        environment,
                        owner_id: None,
                        claims: BTreeMap::new(),
                    }
                }
                _ => anyhow::bail!(
                    "give one of --github OWNER/REPO, --gitlab NAMESPACE/PROJECT, --google EMAIL, --generic NAME"
                ),
            };
            if pending {
                let username = owner.unwrap_or_default();
                let user = crate::accounts::find_by_username(&state.db, &username)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("no user named '{username}'"))?;
                let proxying = state.proxy.is_some();
                let added = crate::oidc::pending::add(
                    &state.db,
                    new,
                    &name,
                    &user,
                    proxying,
                    state.settings.require_2fa,
                    &by,
                )
                .await?;
                return Ok(vec![pending_line(&added, &user.username)]);
            }
            let project = project(state, &name).await?;
            let publisher = publishers::add(&state.db, new, &project, &by).await?;
            vec![line(&publisher)]
        }
        PublisherCommand::List { project: name } => {
            let normalized = wharf_packaging::name::normalize(&name);
            if packaging::find_project(&state.db, &normalized)
                .await?
                .is_none()
            {
                let pending = crate::oidc::pending::for_name(&state.db, &normalized).await?;
                if pending.is_empty() {
                    anyhow::bail!("no project named '{name}', and no pending publisher for it");
                }
                let mut lines = Vec::new();
                for p in &pending {
                    lines.push(pending_line(p, &owner_name(state, &p.added_by).await?));
                }
                return Ok(lines);
            }
            let project = project(state, &name).await?;
            publishers::for_project(&state.db, &project.id)
                .await?
                .iter()
                .map(line)
                .collect()
        }
        PublisherCommand::Remove { project: name, id } => {
            let normalized = wharf_packaging::name::normalize(&name);
            let pending = crate::oidc::pending::for_name(&state.db, &normalized).await?;
            if let Some(p) = pending.iter().find(|p| p.publisher.id == id.trim()) {
                crate::oidc::pending::remove(&state.db, &p.publisher.id, None, &by).await?;
                return Ok(vec![format!(
                    "removed pending {} for {}",
                    p.publisher.specifier(),
                    p.project_name
                )]);
            }
            let project = project(state, &name).await?;
            let listed = publishers::for_project(&state.db, &project.id).await?;
            let Some(publisher) = listed.iter().find(|p| p.id == id.trim()) else {
                anyhow::bail!(
                    "no publisher {} on '{}' (see wharf publisher list {})",
                    id.trim(),
                    project.name,
                    project.normalized_name
                );
            };
            publishers::remove(&state.db, &project, &publisher.id, &by).await?;
            vec![format!(
                "removed {} from {}",
                publisher.specifier(),
                project.name
            )]
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::PublisherCommand;
    use crate::cli::{Cli, Command};

    fn parse(args: &str) -> Result<PublisherCommand, String> {
        let argv = std::iter::once("wharf").chain(args.split_whitespace());
        match Cli::try_parse_from(argv)
            .map_err(|e| e.kind().to_string())?
            .command
        {
            Command::Publisher { command } => Ok(command),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn the_publisher_commands_take_one_kind_with_its_fields() {
        Cli::command().debug_assert();
        match parse(
            "publisher add demo --github acme/demo --workflow release.yml --environment pypi",
        ) {
            Ok(PublisherCommand::Add {
                github,
                workflow,
                environment,
                gitlab,
                ..
            }) => {
                assert_eq!(github.as_deref(), Some("acme/demo"));
                assert_eq!(workflow.as_deref(), Some("release.yml"));
                assert_eq!(environment.as_deref(), Some("pypi"));
                assert!(gitlab.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(parse("publisher add demo --gitlab acme/demo --ci-config .gitlab-ci.yml").is_ok());
        assert!(parse("publisher list demo").is_ok());
        assert!(
            parse("publisher add new --github a/b --workflow r.yml --pending --owner alice")
                .is_ok()
        );
        assert!(parse("publisher remove demo 1234").is_ok());
        for refused in [
            "publisher add demo",
            "publisher add demo --github acme/demo",
            "publisher add demo --gitlab acme/demo",
            "publisher add demo --github acme/demo --workflow r.yml --gitlab a/b --ci-config c.yml",
            "publisher add demo --workflow r.yml",
            "publisher add demo --github a/b --workflow r.yml --pending",
            "publisher add demo --github a/b --workflow r.yml --owner alice",
        ] {
            assert!(parse(refused).is_err(), "{refused}");
        }
    }
}
