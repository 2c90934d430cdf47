//! Warehouse's caveats (`warehouse/macaroons/caveats`): parsing, serialising and checking.

use serde_json::Value;

/// The project a request acts on.
#[derive(Clone, Copy, Debug)]
pub struct ProjectRef<'a> {
    pub normalized_name: &'a str,
    pub id: &'a str,
}

/// The trusted publisher a request is identified as (a token minted by Trusted Publishing).
#[derive(Clone, Copy, Debug)]
pub struct PublisherRef<'a> {
    pub id: &'a str,
    /// The ids of the projects the publisher is registered for now.
    pub project_ids: &'a [String],
}

/// What a caveat is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Unix seconds.
    pub now: i64,
    /// The id of the user the token belongs to (empty for a publisher's token).
    pub user_id: &'a str,
    /// The project the request acts on, if any.
    pub project: Option<ProjectRef<'a>>,
    /// The trusted publisher the request is identified as, if it is one (then there is no user).
    pub publisher: Option<PublisherRef<'a>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caveat {
    /// Tag 0: valid while `not_before <= now < expires_at`.
    Expiration { expires_at: i64, not_before: i64 },
    /// Tag 1: only for these projects (PEP 503-normalised names).
    ProjectName(Vec<String>),
    /// Tag 2: only for these project ids.
    ProjectId(Vec<String>),
    /// Tag 3: only when presented by this user.
    RequestUser(String),
    /// Tag 4: Trusted Publishing: only for a request identified as this publisher, on one of
    /// its projects.
    OidcPublisher(String),
    /// Legacy `{"version": 1, "permissions": "user"}`: the request's own user.
    LegacyUser,
}

impl Caveat {
    /// The compact JSON warehouse writes (`sort_keys=True, separators=(",", ":")`).
    pub fn to_json(&self) -> String {
        let value = match self {
            Caveat::Expiration {
                expires_at,
                not_before,
            } => {
                serde_json::json!([0, expires_at, not_before])
            }
            Caveat::ProjectName(names) => serde_json::json!([1, names]),
            Caveat::ProjectId(ids) => serde_json::json!([2, ids]),
            Caveat::RequestUser(user) => serde_json::json!([3, user]),
            Caveat::OidcPublisher(id) => serde_json::json!([4, id]),
            Caveat::LegacyUser => serde_json::json!({"permissions": "user", "version": 1}),
        };
        value.to_string()
    }

    /// Parses a caveat; the error is the reason warehouse would give.
    pub fn parse(raw: &[u8]) -> Result<Caveat, String> {
        let value: Value =
            serde_json::from_slice(raw).map_err(|_| "caveat is not valid JSON".to_owned())?;
        match value {
            Value::Array(items) => parse_array(&items),
            Value::Object(map) => parse_legacy(&map),
            _ => Err("caveat must be an array".to_owned()),
        }
    }

    /// Checks the caveat; the error is the failure message warehouse uses.
    pub fn check(&self, context: &Context<'_>) -> Result<(), String> {
        match self {
            Caveat::Expiration {
                expires_at,
                not_before,
            } => {
                if context.now < *not_before || context.now >= *expires_at {
                    return Err("token is expired".to_owned());
                }
            }
            Caveat::ProjectName(names) => {
                let project = project_context(context)?;
                if !names.iter().any(|n| n == project.normalized_name) {
                    return Err(not_valid_for(project));
                }
            }
            Caveat::ProjectId(ids) => {
                let project = project_context(context)?;
                if !ids.iter().any(|id| id == project.id) {
                    return Err(not_valid_for(project));
                }
            }
            Caveat::RequestUser(user_id) => {
                if context.publisher.is_some() {
                    return Err("token with user restriction without a user".to_owned());
                }
                if user_id != context.user_id {
                    return Err("current user does not match user restriction in token".to_owned());
                }
            }
            Caveat::OidcPublisher(publisher_id) => {
                let Some(publisher) = context.publisher else {
                    return Err(
                        "OIDC scoped token used outside of an OIDC identified request".to_owned(),
                    );
                };
                if publisher.id != publisher_id {
                    return Err(
                        "current OIDC publisher does not match publisher restriction in token"
                            .to_owned(),
                    );
                }
                let Some(project) = context.project else {
                    return Err("OIDC scoped token used outside of a project context".to_owned());
                };
                if !publisher.project_ids.iter().any(|id| id == project.id) {
                    return Err(format!(
                        "OIDC scoped token is not valid for project '{}'",
                        project.normalized_name
                    ));
                }
            }
            Caveat::LegacyUser => {}
        }
        Ok(())
    }
}

fn project_context<'a>(context: &Context<'a>) -> Result<ProjectRef<'a>, String> {
    context
        .project
        .ok_or_else(|| "project-scoped token used outside of a project context".to_owned())
}

fn not_valid_for(project: ProjectRef<'_>) -> String {
    format!(
        "project-scoped token is not valid for project: '{}'",
        project.normalized_name
    )
}

fn parse_array(items: &[Value]) -> Result<Caveat, String> {
    let (tag, fields) = items.split_first().ok_or("caveat array cannot be empty")?;
    let tag = tag.as_i64().filter(|_| tag.is_i64() || tag.is_u64());
    let malformed = |tag: i64| format!("malformed caveat with tag {tag}");
    match tag {
        Some(0) => match fields {
            [expires_at, not_before] => Ok(Caveat::Expiration {
                expires_at: strict_int(expires_at).ok_or_else(|| malformed(0))?,
                not_before: strict_int(not_before).ok_or_else(|| malformed(0))?,
            }),
            _ => Err(malformed(0)),
        },
        Some(1) => match fields {
            [names] => Ok(Caveat::ProjectName(
                strict_strings(names).ok_or_else(|| malformed(1))?,
            )),
            _ => Err(malformed(1)),
        },
        Some(2) => match fields {
            [ids] => Ok(Caveat::ProjectId(
                strict_strings(ids).ok_or_else(|| malformed(2))?,
            )),
            _ => Err(malformed(2)),
        },
        Some(3) => match fields {
            [Value::String(user)] => Ok(Caveat::RequestUser(user.clone())),
            _ => Err(malformed(3)),
        },
        Some(4) => match fields {
            [Value::String(id)] | [Value::String(id), Value::Null | Value::Object(_)] => {
                Ok(Caveat::OidcPublisher(id.clone()))
            }
            _ => Err(malformed(4)),
        },
        Some(other) => Err(format!("caveat has unknown tag: {other}")),
        None => Err("caveat has unknown tag".to_owned()),
    }
}

/// Warehouse's `_legacy.adapt`: the JSON objects tokens carried before 2022.
fn parse_legacy(map: &serde_json::Map<String, Value>) -> Result<Caveat, String> {
    let unknown = || "caveat must be an array".to_owned();
    if let Some(permissions) = map.get("permissions") {
        if map.get("version").and_then(Value::as_i64) != Some(1) {
            return Err(unknown());
        }
        return match permissions {
            Value::String(s) if s == "user" => Ok(Caveat::LegacyUser),
            Value::Object(scope) => match scope.get("projects").and_then(strict_strings) {
                Some(projects) if scope.len() == 1 => Ok(Caveat::ProjectName(projects)),
                _ => Err(unknown()),
            },
            _ => Err(unknown()),
        };
    }
    if let (Some(exp), Some(nbf)) = (map.get("exp"), map.get("nbf")) {
        return match (strict_int(exp), strict_int(nbf)) {
            (Some(expires_at), Some(not_before)) if map.len() == 2 => Ok(Caveat::Expiration {
                expires_at,
                not_before,
            }),
            _ => Err(unknown()),
        };
    }
    if let Some(ids) = map.get("project_ids").and_then(strict_strings)
        && map.len() == 1
    {
        return Ok(Caveat::ProjectId(ids));
    }
    Err(unknown())
}

fn strict_int(value: &Value) -> Option<i64> {
    value.as_i64()
}

fn strict_strings(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}
