//! The project permission matrix: every project route × who asks (signed out, no role,
//! Maintainer, Owner, Owner with 2FA, administrator) × the project's 2FA requirement × a fresh
//! or stale session, each cell with its exact outcome. The expectations are written out here
//! from PyPI's rules, not computed with the server's own decision.

use crate::browser::{Browser, PASSWORD};
use crate::two_factor::{enable_totp, save_recovery_codes};
use crate::util::{TestApp, TestResponse, UploadForm};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    SignedOut,
    Stranger,
    Maintainer,
    Owner,
    /// An Owner with TOTP set up.
    Owner2fa,
    /// An administrator of the index without a role on the project.
    Admin,
}

const EVERYONE: [Who; 6] = [
    Who::SignedOut,
    Who::Stranger,
    Who::Maintainer,
    Who::Owner,
    Who::Owner2fa,
    Who::Admin,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Owners only.
    Owners,
    /// Owners only, with the password entered within `reauth_secs`.
    OwnersRecent,
    /// Owners, and administrators (to investigate).
    History,
    /// Owners and Maintainers, with an API token.
    Upload,
}

struct Route {
    method: &'static str,
    path: &'static str,
    fields: &'static [(&'static str, &'static str)],
    kind: Kind,
    /// The status when allowed. The destructive forms are sent with a wrong confirmation, so
    /// "allowed" is the form's own 400 and the matrix can go on with the same project.
    allowed: u16,
}

const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/manage/project/demo/releases/",
        fields: &[],
        kind: Kind::Owners,
        allowed: 200,
    },
    Route {
        method: "GET",
        path: "/manage/project/demo/release/1.0/",
        fields: &[],
        kind: Kind::OwnersRecent,
        allowed: 200,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/release/1.0/yank",
        fields: &[("yank_reason", "matrix")],
        kind: Kind::OwnersRecent,
        allowed: 303,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/release/1.0/unyank",
        fields: &[],
        kind: Kind::OwnersRecent,
        allowed: 303,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/release/1.0/delete",
        fields: &[("confirm_version", "not-it")],
        kind: Kind::OwnersRecent,
        allowed: 400,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/release/1.0/file/delete",
        fields: &[
            ("filename", "demo-1.0-py3-none-any.whl"),
            ("confirm_filename", "not-it"),
        ],
        kind: Kind::OwnersRecent,
        allowed: 400,
    },
    Route {
        method: "GET",
        path: "/manage/project/demo/collaboration/",
        fields: &[],
        kind: Kind::OwnersRecent,
        allowed: 200,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/collaboration/invite",
        fields: &[("username", "carol"), ("role", "Nobody")],
        kind: Kind::OwnersRecent,
        allowed: 400,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/collaboration/role",
        fields: &[("user_id", "no-such-user"), ("role", "Owner")],
        kind: Kind::OwnersRecent,
        allowed: 303,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/collaboration/remove",
        fields: &[("user_id", "no-such-user")],
        kind: Kind::OwnersRecent,
        allowed: 303,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/collaboration/revoke",
        fields: &[("invitation_id", "no-such-invitation")],
        kind: Kind::OwnersRecent,
        allowed: 303,
    },
    Route {
        method: "GET",
        path: "/manage/project/demo/publishing/",
        fields: &[],
        kind: Kind::OwnersRecent,
        allowed: 200,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/publishing/add",
        fields: &[
            ("kind", "github"),
            ("owner", "acme"),
            ("workflow", "no-yml"),
        ],
        kind: Kind::OwnersRecent,
        allowed: 400,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/publishing/remove",
        fields: &[("publisher_id", "no-such-publisher")],
        kind: Kind::OwnersRecent,
        allowed: 303,
    },
    // Sent as it already is (off), so an allowed switch changes nothing.
    Route {
        method: "POST",
        path: "/manage/project/demo/publishing/trusted-only",
        fields: &[("only", "no")],
        kind: Kind::OwnersRecent,
        allowed: 303,
    },
    Route {
        method: "GET",
        path: "/manage/project/demo/settings/",
        fields: &[],
        kind: Kind::OwnersRecent,
        allowed: 200,
    },
    // The requirement is sent as it already is (see `cell`), so an allowed switch changes
    // nothing.
    Route {
        method: "POST",
        path: "/manage/project/demo/settings/2fa",
        fields: &[],
        kind: Kind::OwnersRecent,
        allowed: 303,
    },
    Route {
        method: "POST",
        path: "/manage/project/demo/delete",
        fields: &[("confirm_project_name", "not-it")],
        kind: Kind::OwnersRecent,
        allowed: 400,
    },
    Route {
        method: "GET",
        path: "/manage/project/demo/history/",
        fields: &[],
        kind: Kind::History,
        allowed: 200,
    },
    Route {
        method: "GET",
        path: "/manage/project/demo/tokens/",
        fields: &[],
        kind: Kind::OwnersRecent,
        allowed: 200,
    },
    Route {
        method: "UPLOAD",
        path: "/legacy/",
        fields: &[],
        kind: Kind::Upload,
        allowed: 200,
    },
];

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The route's own answer.
    Allowed(u16),
    /// Sent to sign in.
    SignIn,
    /// The password page, in place of the page or action.
    Reauth,
    /// 403 with this in the message.
    Forbidden(&'static str),
}

/// PyPI's rules, written out: Owners do everything; Maintainers only upload; administrators
/// only read the history; where the project requires 2FA nobody without it does anything;
/// destructive and security-relevant actions (and the pages holding them) need a recent
/// password.
fn expected(route: &Route, who: Who, requires_2fa: bool, fresh: bool) -> Outcome {
    let upload = route.kind == Kind::Upload;
    if who == Who::SignedOut {
        return if upload {
            Outcome::Forbidden("Invalid or non-existent authentication")
        } else {
            Outcome::SignIn
        };
    }
    let owner = matches!(who, Who::Owner | Who::Owner2fa);
    let may = match route.kind {
        Kind::Upload => owner || who == Who::Maintainer,
        Kind::History => owner || who == Who::Admin,
        Kind::Owners | Kind::OwnersRecent => owner,
    };
    if !may {
        return Outcome::Forbidden(match (upload, who) {
            (true, _) => "isn't allowed to upload",
            (false, Who::Maintainer) => "Only Owners of demo",
            _ => "You are not a collaborator on demo",
        });
    }
    if requires_2fa && who != Who::Owner2fa {
        return Outcome::Forbidden(if upload {
            "does not have two-factor authentication enabled"
        } else {
            "demo requires its Owners and Maintainers to use two-factor authentication"
        });
    }
    if route.kind == Kind::OwnersRecent && !fresh {
        return Outcome::Reauth;
    }
    Outcome::Allowed(route.allowed)
}

fn outcome(response: &TestResponse) -> Outcome {
    let text = response.text();
    match response.status.as_u16() {
        303 if response
            .header("location")
            .is_some_and(|l| l.starts_with("/account/login/")) =>
        {
            Outcome::SignIn
        }
        200 if text.contains("Confirm your password") => Outcome::Reauth,
        403 => {
            let said = format!("{} {text}", response.message());
            for known in [
                "Invalid or non-existent authentication",
                "isn't allowed to upload",
                "Only Owners of demo",
                "You are not a collaborator on demo",
                "does not have two-factor authentication enabled",
                "demo requires its Owners and Maintainers to use two-factor authentication",
            ] {
                if said.contains(known) {
                    return Outcome::Forbidden(known);
                }
            }
            panic!("an unexpected 403: {said}")
        }
        status => Outcome::Allowed(status),
    }
}

struct Party<'a> {
    who: Who,
    browser: Browser<'a>,
    token: Option<String>,
}

async fn add_role(app: &TestApp, user_id: &str, role: &str) {
    let (project_id,): (String,) =
        sqlx::query_as("SELECT id FROM projects WHERE normalized_name = 'demo'")
            .fetch_one(app.state.db.pool())
            .await
            .expect("project");
    sqlx::query(
        "INSERT INTO roles (project_id, user_id, role_name, created) VALUES ($1, $2, $3, 0)",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role)
    .execute(app.state.db.pool())
    .await
    .expect("role");
}

#[tokio::test]
async fn every_project_route_asks_one_decision() {
    let app = TestApp::new().await;
    let upload = app
        .upload(Some(&app.token), &UploadForm::wheel("demo", "1.0"))
        .await;
    assert_eq!(upload.status, 200, "{}", upload.message());
    let (bob, bob_token) = app.create_user("bob").await;
    add_role(&app, &bob.id, "Maintainer").await;
    let (_, carol_token) = app.create_user("carol").await;
    let (erin, erin_token) = app.create_user("erin").await;
    add_role(&app, &erin.id, "Owner").await;
    let (dave, dave_token) = app.create_user("dave").await;
    sqlx::query("UPDATE users SET is_admin = 1 WHERE id = $1")
        .bind(&dave.id)
        .execute(app.state.db.pool())
        .await
        .expect("admin");

    let mut parties = vec![
        Party {
            who: Who::SignedOut,
            browser: Browser::new(&app),
            token: None,
        },
        Party {
            who: Who::Stranger,
            browser: Browser::signed_in(&app, "carol").await,
            token: Some(carol_token),
        },
        Party {
            who: Who::Maintainer,
            browser: Browser::signed_in(&app, "bob").await,
            token: Some(bob_token),
        },
        Party {
            who: Who::Owner,
            browser: Browser::signed_in(&app, "alice").await,
            token: Some(app.token.clone()),
        },
        Party {
            who: Who::Owner2fa,
            browser: Browser::signed_in(&app, "erin").await,
            token: Some(erin_token),
        },
        Party {
            who: Who::Admin,
            browser: Browser::signed_in(&app, "dave").await,
            token: Some(dave_token),
        },
    ];
    assert_eq!(
        parties.iter().map(|p| p.who).collect::<Vec<_>>(),
        EVERYONE.to_vec()
    );
    save_recovery_codes(&mut parties[4].browser).await;
    enable_totp(&app, &mut parties[4].browser).await;

    let mut versions = 1..;
    let mut failures = Vec::new();
    let mut cells = 0;
    for requires_2fa in [false, true] {
        sqlx::query("UPDATE projects SET owners_require_2fa = $1")
            .bind(i64::from(requires_2fa))
            .execute(app.state.db.pool())
            .await
            .expect("flag");
        for fresh in [true, false] {
            if fresh {
                for party in parties.iter_mut().filter(|p| p.who != Who::SignedOut) {
                    let again = party
                        .browser
                        .post(
                            "/account/reauthenticate/",
                            &[("password", PASSWORD), ("next", "/manage/projects/")],
                        )
                        .await;
                    assert_eq!(again.status, 303, "{:?}: {}", party.who, again.text());
                }
            } else {
                app.state.clock.advance(app.state.settings.reauth_secs + 1);
            }
            for route in ROUTES {
                for party in &mut parties {
                    let response = match route.method {
                        "GET" => party.browser.get(route.path).await,
                        "POST" if route.path.ends_with("/settings/2fa") => {
                            let same = if requires_2fa { "yes" } else { "" };
                            party.browser.post(route.path, &[("require", same)]).await
                        }
                        "POST" => party.browser.post(route.path, route.fields).await,
                        _ => {
                            let version = format!("3.{}", versions.next().unwrap_or(0));
                            let form = UploadForm::wheel("demo", &version);
                            app.upload(party.token.as_deref(), &form).await
                        }
                    };
                    cells += 1;
                    let want = expected(route, party.who, requires_2fa, fresh);
                    let got = outcome(&response);
                    if got != want {
                        failures.push(format!(
                            "{} {} as {:?}, 2FA required {requires_2fa}, fresh {fresh}: \
                             expected {want:?}, got {got:?} ({})",
                            route.method,
                            route.path,
                            party.who,
                            response.message()
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(cells, ROUTES.len() * EVERYONE.len() * 4);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The allowed destructive cells were sent with wrong confirmations: nothing went away.
    assert_eq!(app.get("/pypi/demo/1.0/json").await.status, 200);
    assert_eq!(app.count("roles").await, 3);
}

/// A project nobody has: every page says 404, whoever asks.
#[tokio::test]
async fn every_project_route_of_a_missing_project_is_404() {
    let app = TestApp::new().await;
    let mut browser = Browser::signed_in(&app, "alice").await;
    for route in ROUTES.iter().filter(|r| r.kind != Kind::Upload) {
        let path = route.path.replace("/demo/", "/nothing-here/");
        let response = match route.method {
            "GET" => browser.get(&path).await,
            _ => browser.post(&path, route.fields).await,
        };
        assert_eq!(response.status, 404, "{path}: {}", response.text());
        assert!(
            response.text().contains("There is no project named"),
            "{path}"
        );
    }
}
