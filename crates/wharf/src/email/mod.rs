//! E-mail: messages rendered from templates (`templates/<name>/{subject,body}.txt`, with an
//! HTML part made from the text) and delivered to the outbox directory (`.eml` files, the
//! embedded default) or to an SMTP server (`--smtp-url`). Every message sent is recorded as
//! `account:email:sent` on the recipient's log.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::{Value, context};
use serde_json::json;
use tokio::sync::Notify;

use crate::config::Settings;
use crate::db::Db;
use crate::events::{self, EventTag, RequestMeta, Source};
use crate::site::SITE_NAME;
use crate::templates::render as templates_render;

pub struct Mailer {
    from: Mailbox,
    transport: Transport,
    base_url: String,
    /// Messages queued with `later` and not yet sent.
    queued: AtomicUsize,
    sent: Notify,
}

enum Transport {
    Outbox(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// A rendered message.
#[derive(Debug)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl Mailer {
    pub fn new(settings: &Settings) -> anyhow::Result<Mailer> {
        let from: Mailbox = settings
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid mail_from {:?}: {e}", settings.mail_from))?;
        let transport = match &settings.smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| anyhow::anyhow!("invalid SMTP URL: {e}"))?
                    .build(),
            ),
            None => {
                let dir = settings.outbox_dir();
                std::fs::create_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
                Transport::Outbox(dir)
            }
        };
        Ok(Mailer {
            from,
            transport,
            base_url: settings.base_url(),
            queued: AtomicUsize::new(0),
            sent: Notify::new(),
        })
    }

    /// Runs `work` (the sending of a message, and what goes with it) in the background, so
    /// the response does not wait on the mail server: a page that must answer the same
    /// whether or not it sends mail (a password-reset request) takes the same time.
    pub fn later(self: &Arc<Self>, work: impl Future<Output = ()> + Send + 'static) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mailer = Arc::clone(self);
        tokio::spawn(async move {
            work.await;
            mailer.queued.fetch_sub(1, Ordering::SeqCst);
            mailer.sent.notify_waiters();
        });
    }

    /// How many messages queued with `later` are not sent yet.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Waits until every message queued with `later` is sent (tests read the outbox).
    pub async fn idle(&self) {
        loop {
            // Registered before the count is read, so no wake-up is missed.
            let sent = self.sent.notified();
            if self.queued.load(Ordering::SeqCst) == 0 {
                return;
            }
            sent.await;
        }
    }

    /// Renders `template` for one recipient.
    pub fn render(&self, template: &str, to: &str, page: Value) -> anyhow::Result<Email> {
        let page = context! { ..page, ..context! { site_name => SITE_NAME, base_url => self.base_url.clone() } };
        let subject = templates_render(&format!("email/{template}/subject.txt"), page.clone())?;
        let text = templates_render(&format!("email/{template}/body.txt"), page)?;
        Ok(Email {
            to: to.to_owned(),
            subject: subject.trim().to_owned(),
            text,
        })
    }

    /// Delivers a rendered message.
    pub async fn deliver(&self, email: &Email) -> anyhow::Result<()> {
        let to: Mailbox = email
            .to
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid recipient: {e}"))?;
        let paragraphs: Vec<Vec<String>> = email
            .text
            .split("\n\n")
            .map(|p| p.lines().map(str::to_owned).collect())
            .collect();
        let html = templates_render(
            "email/layout.html",
            context! { subject => email.subject.clone(), paragraphs => paragraphs },
        )?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(eight_bit(email.text.clone())),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(eight_bit(html)),
                    ),
            )?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::Outbox(dir) => {
                // Written aside, then renamed: a reader never sees half a message.
                let name = format!(
                    "{}-{}.eml",
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros()),
                    uuid::Uuid::new_v4().simple()
                );
                let partial = dir.join(format!(".{name}.partial"));
                tokio::fs::write(&partial, message.formatted()).await?;
                let path = dir.join(name);
                tokio::fs::rename(&partial, &path).await?;
                // Without an SMTP server this is the only way to the message's links.
                tracing::info!(to = %email.to, path = %path.display(), "mail written to the outbox");
            }
        }
        Ok(())
    }

    /// Sends `template` to every Owner of a project who has a verified address, after the
    /// response (from the queue); `page` gets each Owner's `username`.
    pub fn notify_owners(
        self: &Arc<Self>,
        db: &Db,
        project_id: &str,
        template: &'static str,
        page: serde_json::Value,
        meta: &RequestMeta,
        now_micros: i64,
    ) {
        let (mailer, db, meta, project_id) = (
            self.clone(),
            db.clone(),
            meta.clone(),
            project_id.to_owned(),
        );
        self.later(async move {
            let owners = match crate::packaging::roles::owner_addresses(&db, &project_id).await {
                Ok(owners) => owners,
                Err(e) => {
                    tracing::error!(template, error = %e, "cannot list the Owners to notify");
                    return;
                }
            };
            for (user_id, username, address) in owners {
                let mut page = page.clone();
                page["username"] = json!(username);
                let page = Value::from(minijinja::value::Serde(&page));
                mailer
                    .notify(&db, (&user_id, &address), template, page, &meta, now_micros)
                    .await;
            }
        });
    }

    /// Sends `template` to a user (`(user id, address)`) and records it on their log. A
    /// failure to deliver is logged, not raised: the change the message reports has happened.
    pub async fn notify(
        &self,
        db: &Db,
        (user_id, to): (&str, &str),
        template: &str,
        page: Value,
        meta: &RequestMeta,
        now_micros: i64,
    ) {
        let email = match self.render(template, to, page) {
            Ok(email) => email,
            Err(e) => {
                tracing::error!(template, error = %e, "cannot render e-mail");
                return;
            }
        };
        if let Err(e) = self.deliver(&email).await {
            tracing::error!(template, error = %e, "cannot deliver e-mail");
            return;
        }
        let recorded = async {
            let mut conn = db.pool().acquire().await?;
            events::record(
                &mut conn,
                Source::User(user_id),
                EventTag::AccountEmailSent,
                meta,
                now_micros,
                json!({"from_": self.from.to_string(), "to": to, "subject": email.subject}),
            )
            .await
        };
        if let Err(e) = recorded.await {
            tracing::error!(error = %e, "cannot record e-mail event");
        }
    }
}

/// `text` as an 8bit body with CRLF line ends. lettre would choose quoted-printable for any line
/// over 76 characters, and its `=` soft breaks split a link so that copy and paste breaks it;
/// RFC 5322 allows lines of 998 octets, and every SMTP server today takes 8BITMIME. Text with a
/// longer line (none of our templates) keeps lettre's own choice.
fn eight_bit(text: String) -> Body {
    if text.contains('\r') || text.split('\n').any(|line| line.len() > 998) {
        return Body::new(text);
    }
    Body::dangerous_pre_encoded(
        text.replace('\n', "\r\n").into_bytes(),
        ContentTransferEncoding::EightBit,
    )
}
