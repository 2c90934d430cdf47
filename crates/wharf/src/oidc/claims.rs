//! Which publisher a verified ID token's claims name, and whether they satisfy it: Warehouse's
//! checks (`warehouse/oidc/models/{github,gitlab}.py`) claim by claim, in its order and with
//! its messages. Pure: the store hands in the candidates.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The claims of an ID token whose signature and registered claims were checked.
pub type Claims = Map<String, Value>;

/// Why the claims name no publisher (Warehouse's `InvalidPublisherError`); the message is
/// shown to the CI job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Mismatch(pub String);

fn mismatch(message: impl Into<String>) -> Mismatch {
    Mismatch(message.into())
}

/// The kinds of publisher wharf offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    GitHub,
    GitLab,
    /// A Google Cloud service account.
    Google,
    /// An issuer an admin registered (`trusted_publishing.generic_issuers`), its publishers
    /// identified by the claims it names.
    Generic,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GitHub => "github",
            Kind::GitLab => "gitlab",
            Kind::Google => "google",
            Kind::Generic => "generic",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "github" => Some(Kind::GitHub),
            "gitlab" => Some(Kind::GitLab),
            "google" => Some(Kind::Google),
            "generic" => Some(Kind::Generic),
            _ => None,
        }
    }

    /// Warehouse's `publisher_name`.
    pub fn display(self) -> &'static str {
        match self {
            Kind::GitHub => "GitHub",
            Kind::GitLab => "GitLab",
            Kind::Google => "Google",
            Kind::Generic => "Generic",
        }
    }
}

/// A registered publisher: what its claims must say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publisher {
    pub id: String,
    pub kind: Kind,
    pub issuer: String,
    /// GitHub: the repository's owner. GitLab: the namespace.
    pub owner: String,
    /// GitHub: the repository. GitLab: the project.
    pub repository: String,
    /// GitHub: the workflow's file name. GitLab: the CI config file's path.
    pub workflow: String,
    /// `""`: any environment, or none.
    pub environment: String,
    /// GitHub's `repository_owner_id`, once known.
    pub owner_id: Option<String>,
    /// Google: `sub` when one is required. Generic: the claims (name → value) that identify
    /// the publisher. Empty for the others.
    pub claims: BTreeMap<String, String>,
}

impl Publisher {
    /// `owner/repository` (GitHub) or `namespace/project` (GitLab).
    pub fn path(&self) -> String {
        format!("{}/{}", self.owner, self.repository)
    }

    /// Where the repository is, for people reading the events.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::GitHub => format!("https://github.com/{}", self.path()),
            Kind::GitLab => format!("{}/{}", self.issuer.trim_end_matches('/'), self.path()),
            Kind::Google | Kind::Generic => self.issuer.clone(),
        }
    }

    /// How the publisher is named in lists and events:
    /// `GitHub acme/widget .github/workflows/release.yml (environment pypi)`.
    pub fn specifier(&self) -> String {
        let workflow = match self.kind {
            Kind::GitHub => format!(".github/workflows/{}", self.workflow),
            Kind::GitLab => self.workflow.clone(),
            Kind::Google => {
                let mut text = format!("Google service account {}", self.owner);
                if let Some(sub) = self.claims.get("sub") {
                    text.push_str(&format!(" (subject {sub})"));
                }
                return text;
            }
            Kind::Generic => {
                let pairs: Vec<String> = self
                    .claims
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                return format!("{} {}", self.issuer, pairs.join(", "));
            }
        };
        let mut text = format!("{} {} {workflow}", self.kind.display(), self.path());
        if self.kind == Kind::GitLab
            && self.issuer != crate::config::trusted_publishing::GITLAB_ISSUER
        {
            text.push_str(&format!(" on {}", self.issuer));
        }
        if !self.environment.is_empty() {
            text.push_str(&format!(" (environment {})", self.environment));
        }
        text
    }

    /// What a minted token keeps of the claims, for the file events of its uploads: the CI
    /// run's ref, commit and run id.
    pub fn stored_claims(&self, claims: &Claims) -> Value {
        let get = |name: &str| claims.get(name).cloned().unwrap_or(Value::Null);
        match self.kind {
            Kind::GitHub => serde_json::json!({
                "ref": get("ref"), "sha": get("sha"), "run_id": get("run_id"),
                "run_attempt": get("run_attempt"),
            }),
            Kind::GitLab => serde_json::json!({
                "ref_path": get("ref_path"), "sha": get("sha"), "pipeline_id": get("pipeline_id"),
                "job_id": get("job_id"),
            }),
            Kind::Google => serde_json::json!({"email": get("email"), "sub": get("sub")}),
            Kind::Generic => {
                let mut kept: Map<String, Value> =
                    self.claims.keys().map(|k| (k.clone(), get(k))).collect();
                kept.insert("sub".to_owned(), get("sub"));
                Value::Object(kept)
            }
        }
    }
}

/// A string claim; any other type counts as absent.
fn text<'a>(claims: &'a Claims, name: &str) -> Option<&'a str> {
    claims.get(name).and_then(Value::as_str)
}

/// The claims that must be there, checkable or not (Warehouse's required verifiable and
/// unverifiable claims): a missing one is a change of the issuer's token format.
fn required(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::GitHub => &[
            "repository",
            "repository_owner",
            "repository_owner_id",
            "job_workflow_ref",
            "jti",
            "event_name",
            "ref",
            "sha",
        ],
        Kind::GitLab => &[
            "sub",
            "project_path",
            "ci_config_ref_uri",
            "jti",
            "ref_path",
            "sha",
        ],
        Kind::Google => &["email", "email_verified"],
        // Its publisher's own claims, checked by `verify`.
        Kind::Generic => &[],
    }
}

/// A claim as text for comparing with a registered value: a string, or a number or boolean
/// as JSON writes it (CI systems send ids both ways).
fn claim_text(claims: &Claims, name: &str) -> Option<String> {
    match claims.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn check_present(kind: Kind, claims: &Claims) -> Result<(), Mismatch> {
    for name in required(kind) {
        if claims.get(*name).is_none_or(Value::is_null) {
            return Err(mismatch(format!("Missing claim '{name}'")));
        }
    }
    Ok(())
}

/// What to look the publisher up by, taken from the claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lookup {
    pub owner: String,
    pub repository: String,
    pub workflow: String,
}

/// Warehouse's `lookup_by_claims`: the repository and the workflow the claims name.
pub fn lookup(kind: Kind, claims: &Claims) -> Result<Lookup, Mismatch> {
    check_present(kind, claims)?;
    match kind {
        Kind::GitHub => {
            let repository = text(claims, "repository").unwrap_or_default();
            let (owner, name) = repository
                .split_once('/')
                .ok_or_else(|| mismatch("The repository claim is not OWNER/REPOSITORY"))?;
            let workflow_ref = text(claims, "job_workflow_ref").unwrap_or_default();
            let workflow = github_workflow_filename(workflow_ref).ok_or_else(|| {
                mismatch("Could not job extract workflow filename from OIDC claims")
            })?;
            Ok(Lookup {
                owner: owner.to_owned(),
                repository: name.to_owned(),
                workflow: workflow.to_owned(),
            })
        }
        Kind::GitLab => {
            let path = text(claims, "project_path").unwrap_or_default();
            let (namespace, project) = path
                .rsplit_once('/')
                .ok_or_else(|| mismatch("The project_path claim is not NAMESPACE/PROJECT"))?;
            let uri = text(claims, "ci_config_ref_uri").unwrap_or_default();
            let workflow = gitlab_workflow_filepath(uri)
                .ok_or_else(|| mismatch("Could not extract workflow filename from OIDC claims"))?;
            Ok(Lookup {
                owner: namespace.to_owned(),
                repository: project.to_owned(),
                workflow: workflow.to_owned(),
            })
        }
        Kind::Google => Ok(Lookup {
            owner: text(claims, "email").unwrap_or_default().to_owned(),
            repository: String::new(),
            workflow: String::new(),
        }),
        // Every publisher of the issuer is a candidate; `matches_lookup` decides.
        Kind::Generic => Ok(Lookup {
            owner: String::new(),
            repository: String::new(),
            workflow: String::new(),
        }),
    }
}

/// Whether a candidate is the one `lookup` names (the store selects loosely; this decides).
pub fn matches_lookup(publisher: &Publisher, lookup: &Lookup, claims: &Claims) -> bool {
    match publisher.kind {
        // GitHub names are case-insensitive (the owner id, once pinned, is what stops a
        // re-created account).
        Kind::GitHub => {
            publisher.owner.eq_ignore_ascii_case(&lookup.owner)
                && publisher
                    .repository
                    .eq_ignore_ascii_case(&lookup.repository)
                && publisher.workflow == lookup.workflow
                && publisher
                    .owner_id
                    .as_deref()
                    .is_none_or(|id| Some(id) == text(claims, "repository_owner_id"))
        }
        // GitLab paths are case-insensitive; the issuer must be the publisher's own.
        Kind::GitLab => {
            publisher.owner.to_lowercase() == lookup.owner.to_lowercase()
                && publisher.repository.to_lowercase() == lookup.repository.to_lowercase()
                && publisher.workflow == lookup.workflow
                && Some(publisher.issuer.as_str()) == text(claims, "iss")
        }
        Kind::Google => {
            publisher.owner.eq_ignore_ascii_case(&lookup.owner)
                && Some(publisher.issuer.as_str()) == text(claims, "iss")
        }
        // A row that names no claim would match every token of the issuer: it matches none.
        Kind::Generic => {
            Some(publisher.issuer.as_str()) == text(claims, "iss")
                && !publisher.claims.is_empty()
                && publisher
                    .claims
                    .iter()
                    .all(|(k, v)| claim_text(claims, k).as_deref() == Some(v.as_str()))
        }
    }
}

/// The most specific of the matching publishers: one of the token's environment, else one
/// for any environment.
pub fn most_specific<'a>(
    candidates: &'a [Publisher],
    claims: &Claims,
) -> Result<&'a Publisher, Mismatch> {
    let not_found = || mismatch("Publisher with matching claims was not found");
    match candidates.first().map(|p| p.kind) {
        // One that names the token's subject, else one for any subject.
        Some(Kind::Google) => {
            let sub = text(claims, "sub");
            return candidates
                .iter()
                .find(|p| p.claims.get("sub").is_some_and(|s| Some(s.as_str()) == sub))
                .or_else(|| candidates.iter().find(|p| !p.claims.contains_key("sub")))
                .ok_or_else(not_found);
        }
        // The one that names the most claims (all of them matched); the oldest of equals.
        Some(Kind::Generic) => {
            let most = candidates.iter().map(|p| p.claims.len()).max().unwrap_or(0);
            return candidates
                .iter()
                .find(|p| p.claims.len() == most)
                .ok_or_else(not_found);
        }
        _ => {}
    }
    let environment = text(claims, "environment").filter(|e| !e.is_empty());
    let same = |p: &&Publisher| match (p.kind, environment) {
        (Kind::GitHub, Some(env)) => p.environment == env.to_lowercase(),
        (Kind::GitLab, Some(env)) => p.environment == env,
        _ => false,
    };
    candidates
        .iter()
        .find(same)
        .or_else(|| candidates.iter().find(|p| p.environment.is_empty()))
        .ok_or_else(not_found)
}

/// Warehouse's `verify_claims`: every checkable claim against the publisher, in its order.
/// `jti` is checked by the caller (against the store) right after these.
pub fn verify(publisher: &Publisher, claims: &Claims) -> Result<(), Mismatch> {
    check_present(publisher.kind, claims)?;
    let failed = |name: &str| mismatch(format!("Check failed for required claim '{name}'"));
    let claim = |name: &str| text(claims, name).unwrap_or_default();
    match publisher.kind {
        Kind::GitHub => {
            let repository = claim("repository");
            if repository.is_empty() || repository.to_lowercase() != publisher.path().to_lowercase()
            {
                return Err(failed("repository"));
            }
            if !claim("repository_owner").eq_ignore_ascii_case(&publisher.owner) {
                return Err(failed("repository_owner"));
            }
            if let Some(id) = &publisher.owner_id
                && claim("repository_owner_id") != id
            {
                return Err(failed("repository_owner_id"));
            }
            let workflow = format!(
                "{}/.github/workflows/{}",
                publisher.path(),
                publisher.workflow
            );
            check_ref_claim(
                "job_workflow_ref",
                &workflow,
                claims,
                &["ref", "sha"],
                false,
                true,
            )?;
            if claim("event_name") == "pull_request_target" {
                return Err(mismatch(
                    "Publishing from a workflow invoked via 'pull_request_target' is not supported.",
                ));
            }
            check_environment(publisher, claims, true)
        }
        Kind::GitLab => {
            let sub = claim("sub");
            let mut parts = sub.split(':');
            let (first, second) = (parts.next().unwrap_or_default(), parts.next());
            let expected = format!("project_path:{}", publisher.path()).to_lowercase();
            let sub_ok = matches!(second, Some(second) if !first.is_empty() && !second.is_empty()
                && format!("{first}:{second}").to_lowercase() == expected);
            if !sub_ok {
                return Err(failed("sub"));
            }
            let path = claim("project_path");
            if path.is_empty() || path.to_lowercase() != publisher.path().to_lowercase() {
                return Err(failed("project_path"));
            }
            let host = publisher
                .issuer
                .trim_end_matches('/')
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            let config = format!("{host}/{}//{}", publisher.path(), publisher.workflow);
            check_ref_claim(
                "ci_config_ref_uri",
                &config,
                claims,
                &["ref_path", "sha"],
                true,
                false,
            )?;
            check_environment(publisher, claims, false)
        }
        Kind::Google => {
            // Warehouse's check: an address Google has not verified names nobody.
            let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)));
            if !verified {
                return Err(failed("email_verified"));
            }
            if !claim("email").eq_ignore_ascii_case(&publisher.owner) {
                return Err(failed("email"));
            }
            if let Some(sub) = publisher.claims.get("sub")
                && claim("sub") != sub
            {
                return Err(mismatch("Check failed for optional claim 'sub'"));
            }
            Ok(())
        }
        Kind::Generic => {
            if publisher.claims.is_empty() {
                return Err(mismatch("The publisher names no claim to check"));
            }
            for (name, value) in &publisher.claims {
                if claim_text(claims, name).as_deref() != Some(value.as_str()) {
                    return Err(failed(name));
                }
            }
            Ok(())
        }
    }
}

/// `job_workflow_ref` / `ci_config_ref_uri`: `<expected>@<ref>` for one of the ref claims.
/// GitHub needs one of them non-empty; GitLab both. `fold_case`: GitHub's names are
/// case-insensitive, so the publisher may be registered in another case than the token's.
fn check_ref_claim(
    name: &str,
    expected: &str,
    claims: &Claims,
    refs: &[&str],
    need_all: bool,
    fold_case: bool,
) -> Result<(), Mismatch> {
    let signed = text(claims, name).unwrap_or_default();
    if signed.is_empty() {
        return Err(mismatch(format!("The {name} claim is empty")));
    }
    let values: Vec<&str> = refs
        .iter()
        .map(|r| text(claims, r).unwrap_or_default())
        .collect();
    let missing = if need_all {
        values.iter().any(|v| v.is_empty())
    } else {
        values.iter().all(|v| v.is_empty())
    };
    if missing {
        return Err(mismatch(format!(
            "The {} and {} claims are empty",
            refs[0], refs[1]
        )));
    }
    let mut allowed: Vec<String> = values
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| format!("{expected}@{v}"))
        .collect();
    allowed.sort();
    let same = |a: &String| {
        if fold_case {
            a.eq_ignore_ascii_case(signed)
        } else {
            a == signed
        }
    };
    if allowed.iter().any(same) {
        return Ok(());
    }
    Err(mismatch(format!(
        "The {name} claim does not match, expecting one of {allowed:?}, got {signed:?}"
    )))
}

fn check_environment(
    publisher: &Publisher,
    claims: &Claims,
    case_insensitive: bool,
) -> Result<(), Mismatch> {
    if publisher.environment.is_empty() {
        return Ok(());
    }
    let signed = text(claims, "environment").unwrap_or_default();
    let same = if case_insensitive {
        signed.to_lowercase() == publisher.environment.to_lowercase()
    } else {
        signed == publisher.environment
    };
    if signed.is_empty() || !same {
        return Err(mismatch("Check failed for optional claim 'environment'"));
    }
    Ok(())
}

/// The workflow file name in a GitHub workflow ref (`OWNER/REPO/.github/workflows/F.yml@REF`):
/// Warehouse's `[^/]+\.(yml|yaml)(?=@)`, the leftmost match, greedy.
pub fn github_workflow_filename(workflow_ref: &str) -> Option<&str> {
    let mut start = 0;
    for segment in workflow_ref.split('/') {
        // The greedy `[^/]+` ends at the last `.yml@` / `.yaml@` of the segment, after at
        // least one character.
        let end = (1..segment.len())
            .rev()
            .filter(|&p| segment.is_char_boundary(p))
            .find_map(|p| {
                let rest = &segment[p..];
                [".yml@", ".yaml@"]
                    .iter()
                    .find(|suffix| rest.starts_with(**suffix))
                    .map(|suffix| p + suffix.len() - 1)
            });
        if let Some(end) = end {
            return Some(&workflow_ref[start..start + end]);
        }
        start += segment.len() + 1;
    }
    None
}

/// The CI config path in a GitLab `ci_config_ref_uri` (`HOST/NS/PROJ//PATH/F.yml@REF`):
/// Warehouse's `(?<=//)(.*[^/]\.(yml|yaml))(?=@)`, the leftmost match, greedy.
pub fn gitlab_workflow_filepath(uri: &str) -> Option<&str> {
    let bytes = uri.as_bytes();
    for start in 2..=bytes.len() {
        if &bytes[start - 2..start] != b"//" {
            continue;
        }
        let rest = &uri[start..];
        // `.*` stops at a newline, as Python's `.` does.
        let line = rest.split('\n').next().unwrap_or_default();
        let end = (1..line.len())
            .rev()
            .filter(|&p| line.is_char_boundary(p))
            .find_map(|p| {
                if line.as_bytes()[p - 1] == b'/' {
                    return None;
                }
                let tail = &line[p..];
                [".yml@", ".yaml@"]
                    .iter()
                    .find(|suffix| tail.starts_with(**suffix))
                    .map(|suffix| p + suffix.len() - 1)
            });
        if let Some(end) = end {
            return Some(&rest[..end]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(value: Value) -> Claims {
        match value {
            Value::Object(map) => map,
            _ => panic!("an object"),
        }
    }

    fn github(environment: &str) -> Publisher {
        Publisher {
            id: "p1".into(),
            kind: Kind::GitHub,
            issuer: "https://token.actions.githubusercontent.com".into(),
            owner: "octo-org".into(),
            repository: "octo-repo".into(),
            workflow: "release.yml".into(),
            environment: environment.into(),
            owner_id: Some("65".into()),
            claims: BTreeMap::new(),
        }
    }

    /// GitHub's documented example, for a workflow run on main in environment "prod".
    fn github_claims() -> Claims {
        claims(serde_json::json!({
            "jti": "example-id", "sub": "repo:octo-org/octo-repo:environment:prod",
            "environment": "prod", "aud": "wharf.test", "ref": "refs/heads/main",
            "sha": "example-sha", "repository": "octo-org/octo-repo", "repository_owner": "octo-org",
            "actor_id": "12", "repository_visibility": "private", "repository_id": "74",
            "repository_owner_id": "65", "run_id": "example-run-id", "run_number": "10",
            "run_attempt": "2", "runner_environment": "github-hosted", "actor": "octocat",
            "workflow": "release", "head_ref": "", "base_ref": "", "event_name": "workflow_dispatch",
            "ref_type": "branch", "job_workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
            "workflow_ref": "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/main",
            "iss": "https://token.actions.githubusercontent.com", "nbf": 1632492967,
            "exp": 1632493867, "iat": 1632493567
        }))
    }

    #[test]
    fn workflow_names_are_taken_as_warehouse_takes_them() {
        for (given, expected) in [
            (
                "o/r/.github/workflows/release.yml@refs/heads/main",
                Some("release.yml"),
            ),
            ("o/r/.github/workflows/a.yaml@v1", Some("a.yaml")),
            (
                "o/r/.github/workflows/x@y.yml@refs/tags/v1",
                Some("x@y.yml"),
            ),
            (
                "o/r/.github/workflows/release.yml@refs/heads/b.yml@x",
                Some("release.yml"),
            ),
            ("o/r/.github/workflows/.yml@main", None),
            ("o/r/.github/workflows/release.yml", None),
        ] {
            assert_eq!(github_workflow_filename(given), expected, "{given}");
        }
        for (given, expected) in [
            (
                "gitlab.com/ns/proj//.gitlab-ci.yml@refs/heads/main",
                Some(".gitlab-ci.yml"),
            ),
            (
                "gitlab.com/ns/proj//ci/publish.yaml@refs/tags/v1",
                Some("ci/publish.yaml"),
            ),
            ("gitlab.com/ns/proj//ci/.yml@refs/heads/main", None),
            ("gitlab.com/ns/proj/.gitlab-ci.yml@main", None),
        ] {
            assert_eq!(gitlab_workflow_filepath(given), expected, "{given}");
        }
    }

    #[test]
    fn github_claims_match_their_publisher_and_nothing_else() {
        let claims = github_claims();
        let lookup = lookup(Kind::GitHub, &claims).expect("lookup");
        assert_eq!(
            lookup,
            Lookup {
                owner: "octo-org".into(),
                repository: "octo-repo".into(),
                workflow: "release.yml".into()
            }
        );
        let any = github("");
        let prod = Publisher {
            id: "p2".into(),
            ..github("prod")
        };
        assert!(matches_lookup(&any, &lookup, &claims));
        let candidates = [any.clone(), prod.clone()];
        assert_eq!(most_specific(&candidates, &claims), Ok(&prod));
        verify(&prod, &claims).expect("verified");
        verify(&any, &claims).expect("verified");

        let with = |key: &str, value: &str| {
            let mut changed = claims.clone();
            changed.insert(key.into(), Value::String(value.into()));
            changed
        };
        let staging = github("staging");
        assert_eq!(
            most_specific(std::slice::from_ref(&staging), &claims),
            Err(mismatch("Publisher with matching claims was not found"))
        );
        assert_eq!(
            verify(&staging, &claims),
            Err(mismatch("Check failed for optional claim 'environment'"))
        );
        assert_eq!(
            verify(&prod, &with("repository_owner_id", "66")),
            Err(mismatch(
                "Check failed for required claim 'repository_owner_id'"
            ))
        );
        assert!(!matches_lookup(
            &prod,
            &lookup,
            &with("repository_owner_id", "66")
        ));
        assert_eq!(
            verify(&prod, &with("repository", "octo-org/other")),
            Err(mismatch("Check failed for required claim 'repository'"))
        );
        // GitHub's names are case-insensitive.
        verify(&prod, &with("repository", "Octo-Org/Octo-Repo")).expect("case-insensitive");
        let moved = with(
            "job_workflow_ref",
            "octo-org/octo-repo/.github/workflows/release.yml@refs/heads/other",
        );
        let error = verify(&prod, &moved).unwrap_err().0;
        assert!(
            error.starts_with("The job_workflow_ref claim does not match"),
            "{error}"
        );
        assert_eq!(
            verify(&prod, &with("event_name", "pull_request_target")),
            Err(mismatch(
                "Publishing from a workflow invoked via 'pull_request_target' is not supported."
            ))
        );
        let mut no_jti = claims.clone();
        no_jti.remove("jti");
        assert_eq!(lookup_result(&no_jti), Err(mismatch("Missing claim 'jti'")));
        // A workflow ref naming the sha instead of the ref also matches.
        verify(
            &prod,
            &with(
                "job_workflow_ref",
                "octo-org/octo-repo/.github/workflows/release.yml@example-sha",
            ),
        )
        .expect("sha");
    }

    fn lookup_result(claims: &Claims) -> Result<Lookup, Mismatch> {
        lookup(Kind::GitHub, claims)
    }

    #[test]
    fn gitlab_claims_match_their_publisher_on_its_own_instance() {
        let claims = claims(serde_json::json!({
            "namespace_id": "72", "namespace_path": "my-group", "project_id": "20",
            "project_path": "my-group/my-project", "user_id": "1", "user_login": "sample-user",
            "user_email": "sample-user@example.com", "user_identities": [],
            "pipeline_id": "574", "pipeline_source": "push", "job_id": "302",
            "ref": "main", "ref_type": "branch", "ref_path": "refs/heads/main", "ref_protected": "true",
            "environment": "production", "environment_protected": "true",
            "deployment_tier": "production", "environment_action": "start", "runner_id": 1,
            "runner_environment": "self-hosted", "sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "project_visibility": "public",
            "ci_config_ref_uri": "gitlab.example.com/my-group/my-project//.gitlab-ci.yml@refs/heads/main",
            "ci_config_sha": "714a629c0b401fdce83e847fc9589983fc6f46bc",
            "jti": "235b3a54-b797-45c7-ae9a-f72d7bc6ef5b", "iss": "https://gitlab.example.com",
            "iat": 1681395193, "nbf": 1681395188, "exp": 1681398793,
            "sub": "project_path:my-group/my-project:ref_type:branch:ref:main", "aud": "wharf.test"
        }));
        let publisher = Publisher {
            id: "g1".into(),
            kind: Kind::GitLab,
            issuer: "https://gitlab.example.com".into(),
            owner: "my-group".into(),
            repository: "my-project".into(),
            workflow: ".gitlab-ci.yml".into(),
            environment: "production".into(),
            owner_id: None,
            claims: BTreeMap::new(),
        };
        let lookup = lookup(Kind::GitLab, &claims).expect("lookup");
        assert!(matches_lookup(&publisher, &lookup, &claims));
        verify(&publisher, &claims).expect("verified");
        let on_gitlab_com = Publisher {
            issuer: "https://gitlab.com".into(),
            ..publisher.clone()
        };
        assert!(!matches_lookup(&on_gitlab_com, &lookup, &claims));
        let mut other_env = claims.clone();
        other_env.insert("environment".into(), "Production".into());
        assert_eq!(
            verify(&publisher, &other_env),
            Err(mismatch("Check failed for optional claim 'environment'"))
        );
        let mut other_sub = claims.clone();
        other_sub.insert("sub".into(), "project_path:my-group/other:ref:main".into());
        assert_eq!(
            verify(&publisher, &other_sub),
            Err(mismatch("Check failed for required claim 'sub'"))
        );
        assert!(
            publisher
                .specifier()
                .contains("on https://gitlab.example.com")
        );
    }

    #[test]
    fn google_service_accounts_need_a_verified_address_and_their_subject() {
        let claims = claims(serde_json::json!({
            "iss": "https://accounts.google.com", "aud": "wharf.test", "azp": "1234",
            "email": "publisher@project.iam.gserviceaccount.com", "email_verified": true,
            "sub": "1122334455", "iat": 1, "exp": 2
        }));
        let any_subject = Publisher {
            id: "g1".into(),
            kind: Kind::Google,
            issuer: "https://accounts.google.com".into(),
            owner: "Publisher@project.iam.gserviceaccount.com".into(),
            repository: String::new(),
            workflow: String::new(),
            environment: String::new(),
            owner_id: None,
            claims: BTreeMap::new(),
        };
        let lookup = lookup(Kind::Google, &claims).expect("lookup");
        assert!(matches_lookup(&any_subject, &lookup, &claims));
        verify(&any_subject, &claims).expect("verified");
        let subject = Publisher {
            id: "g2".into(),
            claims: BTreeMap::from([("sub".to_owned(), "1122334455".to_owned())]),
            ..any_subject.clone()
        };
        let both = [any_subject.clone(), subject.clone()];
        assert_eq!(most_specific(&both, &claims), Ok(&subject));
        let mut unverified = claims.clone();
        unverified.insert("email_verified".into(), Value::Bool(false));
        assert_eq!(
            verify(&any_subject, &unverified),
            Err(mismatch("Check failed for required claim 'email_verified'"))
        );
        let mut other = claims.clone();
        other.insert("sub".into(), "999".into());
        assert_eq!(
            verify(&subject, &other),
            Err(mismatch("Check failed for optional claim 'sub'"))
        );
        assert_eq!(
            subject.specifier(),
            "Google service account Publisher@project.iam.gserviceaccount.com (subject 1122334455)"
        );
    }

    #[test]
    fn generic_publishers_match_every_claim_they_name() {
        let claims = claims(serde_json::json!({
            "iss": "https://code.example.org/api/actions", "repository": "acme/widget",
            "workflow": "release.yml", "run_id": 77, "ref": "refs/tags/v1"
        }));
        let publisher = Publisher {
            id: "x1".into(),
            kind: Kind::Generic,
            issuer: "https://code.example.org/api/actions".into(),
            owner: String::new(),
            repository: String::new(),
            workflow: String::new(),
            environment: String::new(),
            owner_id: None,
            claims: BTreeMap::from([
                ("repository".to_owned(), "acme/widget".to_owned()),
                ("workflow".to_owned(), "release.yml".to_owned()),
            ]),
        };
        let lookup = lookup(Kind::Generic, &claims).expect("lookup");
        assert!(matches_lookup(&publisher, &lookup, &claims));
        verify(&publisher, &claims).expect("verified");
        let mut other = claims.clone();
        other.insert("workflow".into(), "Release.yml".into());
        assert!(!matches_lookup(&publisher, &lookup, &other));
        assert_eq!(
            verify(&publisher, &other),
            Err(mismatch("Check failed for required claim 'workflow'"))
        );
        // A number in the token compares as JSON writes it.
        let by_run = Publisher {
            claims: BTreeMap::from([("run_id".to_owned(), "77".to_owned())]),
            ..publisher.clone()
        };
        verify(&by_run, &claims).expect("number as text");
        // The most specific of two that match names more claims.
        let both = [by_run.clone(), publisher.clone()];
        assert_eq!(most_specific(&both, &claims), Ok(&publisher));
        assert_eq!(
            publisher.specifier(),
            "https://code.example.org/api/actions repository=acme/widget, workflow=release.yml"
        );
    }
}
