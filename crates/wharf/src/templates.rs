//! The page and e-mail templates (minijinja), compiled into the binary. Names ending in
//! `.html` are autoescaped; e-mail subjects and plain-text bodies (`.txt`) are not.

use std::sync::LazyLock;

use axum::http::StatusCode;
use minijinja::{Environment, Value, context};

macro_rules! templates {
    ($($name:literal => $path:literal),* $(,)?) => {
        &[$(($name, include_str!($path))),*]
    };
}

const PAGES: &[(&str, &str)] = templates! {
    "base.html" => "web/templates/base.html",
    "macros.html" => "web/templates/macros.html",
    "_project_nav.html" => "web/templates/_project_nav.html",
    "_install.html" => "web/templates/_install.html",
    "error.html" => "web/templates/error.html",
    "help.html" => "web/templates/help.html",
    "index.html" => "web/templates/index.html",
    "search.html" => "web/templates/search.html",
    "project.html" => "web/templates/project.html",
    "project_upstream.html" => "web/templates/project_upstream.html",
    "user.html" => "web/templates/user.html",
    "register.html" => "web/templates/register.html",
    "login.html" => "web/templates/login.html",
    "message.html" => "web/templates/message.html",
    "reset_request.html" => "web/templates/reset_request.html",
    "reset_password.html" => "web/templates/reset_password.html",
    "reauthenticate.html" => "web/templates/reauthenticate.html",
    "sso_finish.html" => "web/templates/sso_finish.html",
    "manage_account.html" => "web/templates/manage_account.html",
    "manage_projects.html" => "web/templates/manage_projects.html",
    "manage_project_releases.html" => "web/templates/manage_project_releases.html",
    "manage_release.html" => "web/templates/manage_release.html",
    "manage_collaborators.html" => "web/templates/manage_collaborators.html",
    "manage_project_settings.html" => "web/templates/manage_project_settings.html",
    "manage_project_publishing.html" => "web/templates/manage_project_publishing.html",
    "manage_account_publishing.html" => "web/templates/manage_account_publishing.html",
    "_publisher_fields.html" => "web/templates/_publisher_fields.html",
    "two_factor.html" => "web/templates/two_factor.html",
    "recovery_code_login.html" => "web/templates/recovery_code_login.html",
    "manage_two_factor.html" => "web/templates/manage_two_factor.html",
    "totp_provision.html" => "web/templates/totp_provision.html",
    "recovery_codes.html" => "web/templates/recovery_codes.html",
    "recovery_codes_show.html" => "web/templates/recovery_codes_show.html",
    "recovery_burn.html" => "web/templates/recovery_burn.html",
    "webauthn_provision.html" => "web/templates/webauthn_provision.html",
    "manage_tokens.html" => "web/templates/manage_tokens.html",
    "token_created.html" => "web/templates/token_created.html",
    "manage_token.html" => "web/templates/manage_token.html",
    "manage_project_tokens.html" => "web/templates/manage_project_tokens.html",
    "history.html" => "web/templates/history.html",
    "admin_stats.html" => "web/templates/admin_stats.html",
    "admin_invitations.html" => "web/templates/admin_invitations.html",
    "admin_users.html" => "web/templates/admin_users.html",
    "admin_user.html" => "web/templates/admin_user.html",
    "admin_projects.html" => "web/templates/admin_projects.html",
    "admin_proxy.html" => "web/templates/admin_proxy.html",
    "admin_tokens.html" => "web/templates/admin_tokens.html",
    "_admin_nav.html" => "web/templates/_admin_nav.html",
    "_claim_form.html" => "web/templates/_claim_form.html",
    "email/registration-invitation/subject.txt" => "email/templates/registration-invitation/subject.txt",
    "email/registration-invitation/body.txt" => "email/templates/registration-invitation/body.txt",
    "email/verify-email/subject.txt" => "email/templates/verify-email/subject.txt",
    "email/verify-email/body.txt" => "email/templates/verify-email/body.txt",
    "email/password-reset/subject.txt" => "email/templates/password-reset/subject.txt",
    "email/password-reset/body.txt" => "email/templates/password-reset/body.txt",
    "email/password-change/subject.txt" => "email/templates/password-change/subject.txt",
    "email/password-change/body.txt" => "email/templates/password-change/body.txt",
    "email/new-email-added/subject.txt" => "email/templates/new-email-added/subject.txt",
    "email/new-email-added/body.txt" => "email/templates/new-email-added/body.txt",
    "email/email-removed/subject.txt" => "email/templates/email-removed/subject.txt",
    "email/email-removed/body.txt" => "email/templates/email-removed/body.txt",
    "email/primary-email-change/subject.txt" => "email/templates/primary-email-change/subject.txt",
    "email/primary-email-change/body.txt" => "email/templates/primary-email-change/body.txt",
    "email/account-deleted/subject.txt" => "email/templates/account-deleted/subject.txt",
    "email/account-deleted/body.txt" => "email/templates/account-deleted/body.txt",
    "email/role-invitation/subject.txt" => "email/templates/role-invitation/subject.txt",
    "email/role-invitation/body.txt" => "email/templates/role-invitation/body.txt",
    "email/two-factor-added/subject.txt" => "email/templates/two-factor-added/subject.txt",
    "email/two-factor-added/body.txt" => "email/templates/two-factor-added/body.txt",
    "email/two-factor-removed/subject.txt" => "email/templates/two-factor-removed/subject.txt",
    "email/two-factor-removed/body.txt" => "email/templates/two-factor-removed/body.txt",
    "email/recovery-codes-generated/subject.txt" => "email/templates/recovery-codes-generated/subject.txt",
    "email/recovery-codes-generated/body.txt" => "email/templates/recovery-codes-generated/body.txt",
    "email/recovery-code-used/subject.txt" => "email/templates/recovery-code-used/subject.txt",
    "email/recovery-code-used/body.txt" => "email/templates/recovery-code-used/body.txt",
    "email/recovery-code-reminder/subject.txt" => "email/templates/recovery-code-reminder/subject.txt",
    "email/recovery-code-reminder/body.txt" => "email/templates/recovery-code-reminder/body.txt",
    "email/api-token-used-in-trusted-publisher-project/subject.txt" => "email/templates/api-token-used-in-trusted-publisher-project/subject.txt",
    "email/api-token-used-in-trusted-publisher-project/body.txt" => "email/templates/api-token-used-in-trusted-publisher-project/body.txt",
    "email/trusted-publisher-added/subject.txt" => "email/templates/trusted-publisher-added/subject.txt",
    "email/trusted-publisher-added/body.txt" => "email/templates/trusted-publisher-added/body.txt",
    "email/trusted-publisher-removed/subject.txt" => "email/templates/trusted-publisher-removed/subject.txt",
    "email/trusted-publisher-removed/body.txt" => "email/templates/trusted-publisher-removed/body.txt",
    "email/sso-linked/subject.txt" => "email/templates/sso-linked/subject.txt",
    "email/sso-linked/body.txt" => "email/templates/sso-linked/body.txt",
    "email/token-created/subject.txt" => "email/templates/token-created/subject.txt",
    "email/token-created/body.txt" => "email/templates/token-created/body.txt",
    "email/token-deleted/subject.txt" => "email/templates/token-deleted/subject.txt",
    "email/token-deleted/body.txt" => "email/templates/token-deleted/body.txt",
    "email/token-expiring/subject.txt" => "email/templates/token-expiring/subject.txt",
    "email/token-expiring/body.txt" => "email/templates/token-expiring/body.txt",
    "email/token-compromised-leak/subject.txt" => "email/templates/token-compromised-leak/subject.txt",
    "email/token-compromised-leak/body.txt" => "email/templates/token-compromised-leak/body.txt",
    "email/token-replaced/subject.txt" => "email/templates/token-replaced/subject.txt",
    "email/token-replaced/body.txt" => "email/templates/token-replaced/body.txt",
    "email/tokens-invalidated/subject.txt" => "email/templates/tokens-invalidated/subject.txt",
    "email/tokens-invalidated/body.txt" => "email/templates/tokens-invalidated/body.txt",
    "email/admin-change/subject.txt" => "email/templates/admin-change/subject.txt",
    "email/admin-change/body.txt" => "email/templates/admin-change/body.txt",
    "email/layout.html" => "email/templates/layout.html",
};

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in PAGES {
        if let Err(e) = env.add_template(name, source) {
            // A broken template is a bug caught by the tests that render every page.
            tracing::error!(template = name, error = %e, "invalid template");
        }
    }
    env.add_filter("datetime", datetime);
    env.add_filter("filesize", filesize);
    env
});

pub fn render(name: &str, context: Value) -> Result<String, minijinja::Error> {
    ENV.get_template(name)?.render(context)
}

/// Whether a template exists (e-mails have an HTML part only when they have a template).
pub fn exists(name: &str) -> bool {
    ENV.get_template(name).is_ok()
}

/// Unix microseconds as `2026-11-25 07:14 UTC`.
fn datetime(micros: i64) -> String {
    let iso = crate::clock::iso8601_seconds(micros);
    format!("{} UTC", iso.replace('T', " ").get(..16).unwrap_or(&iso))
}

/// Bytes as `12.3 kB`.
fn filesize(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An error page for a person without a `Web` at hand (fallback routes, the error type).
pub fn error_page(status: StatusCode, message: &str) -> Option<String> {
    render(
        "error.html",
        context! {
            site_name => crate::site::SITE_NAME,
            status => status.as_u16(),
            title => status.canonical_reason().unwrap_or("Error"),
            message => message,
            flashes => Vec::<Value>::new(),
        },
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let mut env = Environment::new();
        for (name, source) in PAGES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn formats_sizes_and_times() {
        assert_eq!(filesize(999), "999 bytes");
        assert_eq!(filesize(12_345), "12.3 kB");
        assert_eq!(filesize(5_000_000), "5.0 MB");
        assert_eq!(datetime(1_705_510_392_779_164), "2024-01-17 16:53 UTC");
    }
}
