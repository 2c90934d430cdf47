//! Invitations to register, for `registration = "invite"`: an admin (web or `wharf user
//! invite`) sends a signed link bound to one address, valid 7 days; its row makes it
//! single-use and revocable. Each invitation sent, accepted, revoked or expired is an event.

use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::User;
use crate::config::EmailDomains;
use crate::db::{Db, Tx};
use crate::email::Mailer;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::signing::{ServerKey, SignatureError};

const PURPOSE: &str = "registration-invitation";

/// How long an invitation can be used.
pub const VALID_SECS: i64 = 7 * 86_400;

#[derive(Clone, Debug, Serialize)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    /// The admin who sent it (their username), `None` from the command line.
    pub invited_by: Option<String>,
    pub created: i64,
    pub expires: i64,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// The account it created.
    pub accepted_by: Option<String>,
}

crate::site::template_value!(Invitation);

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("'{0}' is not a valid e-mail address")]
    InvalidEmail(String),
    #[error("'{0}' is not in the domains this index accepts ({1})")]
    DomainNotAllowed(String, String),
    #[error("an account with the address '{0}' exists already")]
    AccountExists(String),
    #[error("cannot send the invitation e-mail: {0}")]
    Mail(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Why a link does not admit its holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not signed by this index, altered, or naming an address its invitation does not have.
    Invalid,
    Used,
    Revoked,
    Expired,
}

impl Refusal {
    /// The sentence the page shows.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Invalid => {
                "This invitation link is not valid. Check that you copied all of it, or ask an administrator of this index for a new invitation."
            }
            Refusal::Used => {
                "This invitation has been used already: each invitation creates one account. If it was yours, sign in."
            }
            Refusal::Revoked => {
                "This invitation has been withdrawn by an administrator. Ask them for a new one."
            }
            Refusal::Expired => {
                "This invitation has expired: invitations can be used for 7 days. Ask an administrator of this index for a new one."
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    i: String,
    e: String,
}

type Row = (
    String,
    String,
    Option<String>,
    i64,
    i64,
    String,
    Option<String>,
);

const SELECT: &str = "SELECT i.id, i.email, b.username, i.created, i.expires, i.status, a.username \
     FROM registration_invitations i \
     LEFT JOIN users b ON b.id = i.invited_by LEFT JOIN users a ON a.id = i.accepted_by";

fn from_row((id, email, invited_by, created, expires, status, accepted_by): Row) -> Invitation {
    Invitation {
        id,
        email,
        invited_by,
        created,
        expires,
        status,
        accepted_by,
    }
}

/// Where the invitation is used: the register page with its signed token.
pub fn link(keys: &ServerKey, base_url: &str, invitation: &Invitation) -> String {
    let token = keys.sign(
        PURPOSE,
        &Claims {
            i: invitation.id.clone(),
            e: invitation.email.to_lowercase(),
        },
        invitation.expires.div_euclid(1_000_000),
    );
    format!("{base_url}/account/register/?invitation={token}")
}

/// What sending needs besides the database.
pub struct Sender<'a> {
    pub keys: &'a ServerKey,
    pub mailer: &'a Mailer,
    pub base_url: &'a str,
    pub domains: &'a EmailDomains,
}

/// Records an invitation to `email` and e-mails its link. A pending invitation to the same
/// address is revoked (the newest link is the one that works). The row and its events are
/// committed only once the message is delivered: a failed delivery leaves nothing.
pub async fn send(
    db: &Db,
    sender: &Sender<'_>,
    email: &str,
    inviter: Option<&User>,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<Invitation, SendError> {
    let email = email.trim();
    if !super::is_valid_email(email) {
        return Err(SendError::InvalidEmail(email.to_owned()));
    }
    if !sender.domains.allows(email) {
        return Err(SendError::DomainNotAllowed(
            email.to_owned(),
            sender.domains.list().join(", "),
        ));
    }
    if super::find_by_login(db, email).await?.is_some() {
        return Err(SendError::AccountExists(email.to_owned()));
    }
    let invitation = Invitation {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_owned(),
        invited_by: inviter.map(|u| u.username.clone()),
        created: now_micros,
        expires: now_micros + VALID_SECS * 1_000_000,
        status: "pending".to_owned(),
        accepted_by: None,
    };
    let source = match inviter {
        Some(user) => Source::User(&user.id),
        None => Source::Anonymous,
    };
    let mut tx = db.begin().await?;
    let replaced: Vec<(String,)> = sqlx::query_as(
        "UPDATE registration_invitations SET status = 'revoked', finished = $1 \
         WHERE email_key = $2 AND status = 'pending' RETURNING id",
    )
    .bind(now_micros)
    .bind(email.to_lowercase())
    .fetch_all(&mut *tx)
    .await?;
    for (old,) in &replaced {
        events::record(
            &mut tx,
            source,
            EventTag::RegistrationInvitationRevoked,
            meta,
            now_micros,
            json!({"invitation_id": old, "email": email, "replaced_by": invitation.id}),
        )
        .await?;
    }
    sqlx::query(
        "INSERT INTO registration_invitations (id, email, email_key, invited_by, created, expires, status) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
    )
    .bind(&invitation.id)
    .bind(email)
    .bind(email.to_lowercase())
    .bind(inviter.map(|u| u.id.clone()))
    .bind(invitation.created)
    .bind(invitation.expires)
    .execute(&mut *tx)
    .await?;
    events::record(
        &mut tx,
        source,
        EventTag::RegistrationInvitationSent,
        meta,
        now_micros,
        json!({"invitation_id": invitation.id, "email": email, "invited_by": invitation.invited_by}),
    )
    .await?;
    let message = sender
        .mailer
        .render(
            "registration-invitation",
            email,
            context! {
                link => link(sender.keys, sender.base_url, &invitation),
                invited_by => invitation.invited_by.clone(),
                email => email,
            },
        )
        .map_err(|e| SendError::Mail(e.to_string()))?;
    sender
        .mailer
        .deliver(&message)
        .await
        .map_err(|e| SendError::Mail(format!("{e:#}")))?;
    tx.commit().await?;
    Ok(invitation)
}

async fn find(db: &Db, id: &str) -> Result<Option<Invitation>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT} WHERE i.id = $1")))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(row.map(from_row))
}

/// The pending invitation a link names, or why it admits no one. A link used after its
/// 7 days marks its invitation expired (once, with its event).
pub async fn check(
    db: &Db,
    keys: &ServerKey,
    token: &str,
    now_micros: i64,
) -> Result<Result<Invitation, Refusal>, sqlx::Error> {
    // The signature first; its expiry is the row's, judged below so that expiring is recorded.
    let claims: Claims = match keys.verify(PURPOSE, token, i64::MIN) {
        Ok(claims) => claims,
        Err(SignatureError::Invalid | SignatureError::Expired) => {
            return Ok(Err(Refusal::Invalid));
        }
    };
    let Some(invitation) = find(db, &claims.i).await? else {
        return Ok(Err(Refusal::Invalid));
    };
    if invitation.email.to_lowercase() != claims.e {
        return Ok(Err(Refusal::Invalid));
    }
    match invitation.status.as_str() {
        "accepted" => return Ok(Err(Refusal::Used)),
        "revoked" => return Ok(Err(Refusal::Revoked)),
        "expired" => return Ok(Err(Refusal::Expired)),
        _ => {}
    }
    if now_micros >= invitation.expires {
        expire(db, &invitation.id, now_micros).await?;
        return Ok(Err(Refusal::Expired));
    }
    Ok(Ok(invitation))
}

/// Uses up a pending, unexpired invitation for the account `user_id` being created in `tx`.
/// False when it is no longer pending (used by a concurrent request, revoked, expired).
pub(super) async fn accept(
    tx: &mut Tx,
    invitation_id: &str,
    user_id: &str,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<bool, sqlx::Error> {
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "UPDATE registration_invitations SET status = 'accepted', accepted_by = $1, finished = $2 \
         WHERE id = $3 AND status = 'pending' AND expires > $2 RETURNING email, invited_by",
    )
    .bind(user_id)
    .bind(now_micros)
    .bind(invitation_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((email, invited_by)) = row else {
        return Ok(false);
    };
    events::record(
        tx,
        Source::User(user_id),
        EventTag::RegistrationInvitationAccepted,
        meta,
        now_micros,
        json!({"invitation_id": invitation_id, "email": email, "invited_by": invited_by}),
    )
    .await?;
    Ok(true)
}

/// Marks one pending invitation expired, recording the event only if this call did it.
async fn expire(db: &Db, id: &str, now_micros: i64) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row: Option<(String, Option<String>)> = sqlx::query_as(
        "UPDATE registration_invitations SET status = 'expired', finished = $1 \
         WHERE id = $2 AND status = 'pending' AND expires <= $1 RETURNING email, invited_by",
    )
    .bind(now_micros)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((email, invited_by)) = row else {
        return Ok(false);
    };
    let source = match &invited_by {
        Some(admin) => Source::User(admin),
        None => Source::Anonymous,
    };
    events::record(
        &mut tx,
        source,
        EventTag::RegistrationInvitationExpired,
        &RequestMeta::default(),
        now_micros,
        json!({"invitation_id": id, "email": email}),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Marks every invitation past its 7 days expired, one event each (run hourly by `serve`;
/// in several processes at once each invitation still expires once). Returns how many.
pub async fn expire_due(db: &Db, now_micros: i64) -> Result<usize, sqlx::Error> {
    let due: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM registration_invitations WHERE status = 'pending' AND expires <= $1",
    )
    .bind(now_micros)
    .fetch_all(db.pool())
    .await?;
    let mut expired = 0;
    for (id,) in due {
        if expire(db, &id, now_micros).await? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// Revokes a pending invitation. False when there is none by that id still pending.
pub async fn revoke(
    db: &Db,
    id: &str,
    admin: &User,
    meta: &RequestMeta,
    now_micros: i64,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row: Option<(String,)> = sqlx::query_as(
        "UPDATE registration_invitations SET status = 'revoked', finished = $1 \
         WHERE id = $2 AND status = 'pending' RETURNING email",
    )
    .bind(now_micros)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((email,)) = row else {
        return Ok(None);
    };
    events::record(
        &mut tx,
        Source::User(&admin.id),
        EventTag::RegistrationInvitationRevoked,
        meta,
        now_micros,
        json!({"invitation_id": id, "email": email}),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(email))
}

/// Every invitation, newest first (pending ones past their time shown as expired).
pub async fn list(db: &Db, now_micros: i64) -> Result<Vec<Invitation>, sqlx::Error> {
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} ORDER BY i.created DESC LIMIT 500"
    )))
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(from_row)
        .map(|mut i| {
            if i.status == "pending" && now_micros >= i.expires {
                i.status = "expired".to_owned();
            }
            i
        })
        .collect())
}
