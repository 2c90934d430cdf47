//! The cost of authenticating an upload with an API token (parse, database lookup, HMAC chain,
//! caveats, the owner's 2FA policy) next to one password check (argon2id, as sign-in does),
//! measured in the same run. Target: the token path at least 1000× faster.
//!
//! Run: `cargo bench -p wharf --bench token_auth` (prints a Markdown table).

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use wharf::accounts::{self, NewUser};
use wharf::app::AppState;
use wharf::config::Settings;
use wharf::events::RequestMeta;
use wharf::packaging::Project;
use wharf::tokens::{self, TokenScope};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = AppState::open(Settings {
        data_dir: dir.path().to_owned(),
        base_url: Some("https://bench.example".to_owned()),
        ..Settings::default()
    })
    .await?;
    let meta = RequestMeta::default();
    let password = "correct horse battery staple";
    let user = accounts::create_user(
        &state.db,
        &NewUser {
            username: "bench",
            email: "bench@example.org",
            password,
            is_admin: false,
            email_verified: true,
        },
        &meta,
        state.clock.now_micros(),
    )
    .await?;
    let token = tokens::create(
        &tokens::Issuer::of(&state, &state.settings.token_location()),
        &user,
        "bench",
        &TokenScope {
            projects: &[],
            expires_in: Some(86_400),
            read_only: false,
        },
        &meta,
        state.clock.now_micros(),
    )
    .await?;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("__token__:{token}"));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {basic}"))?,
    );
    // A project that does not exist yet (the first upload's case): the caveats still run.
    let project = Project {
        id: uuid::Uuid::new_v4().to_string(),
        name: "bench-project".to_owned(),
        normalized_name: "bench-project".to_owned(),
        last_serial: 0,
        upload_limit: None,
        total_size: 0,
        owners_require_2fa: false,
    };

    let authenticate = || async {
        let identity = wharf::auth::authenticate_upload(&state, &headers, &meta).await?;
        identity.authorize(&state, &meta, &project).await
    };
    for _ in 0..200 {
        authenticate()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    }
    let mut token_samples = Vec::new();
    for _ in 0..5000 {
        let start = Instant::now();
        authenticate()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        token_samples.push(start.elapsed());
    }

    // The first use of a token in a process reads its row from the database.
    let id = tokens::list_for_user(&state.db, &user.id)
        .await?
        .remove(0)
        .id;
    let mut cold_samples = Vec::new();
    for _ in 0..1000 {
        state.token_cache.forget(&id);
        let start = Instant::now();
        authenticate()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
        cold_samples.push(start.elapsed());
    }

    let (hash, _) = accounts::password_state(&state.db, &user.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no password"))?;
    let mut password_samples = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        assert!(accounts::verify_password(password, &hash).await);
        password_samples.push(start.elapsed());
    }

    let token = median(token_samples);
    let cold = median(cold_samples);
    let password = median(password_samples);
    let ratio = password.as_secs_f64() / token.as_secs_f64();
    let cold_ratio = password.as_secs_f64() / cold.as_secs_f64();
    println!("| path | median | runs |");
    println!("|---|---|---|");
    println!(
        "| token upload authentication (parse, lookup, HMAC chain, caveats, 2FA policy) | {:.1} µs | 5000 |",
        token.as_secs_f64() * 1e6
    );
    println!(
        "| the same, first use of the token in this process (one database query) | {:.1} µs | 1000 |",
        cold.as_secs_f64() * 1e6
    );
    println!(
        "| password check (argon2id, as sign-in) | {:.1} ms | 30 |",
        password.as_secs_f64() * 1e3
    );
    println!();
    println!(
        "The token path is {ratio:.0}× faster than a password check (target: ≥ 1000×); \
         {cold_ratio:.0}× on a token's first use in a process."
    );
    Ok(())
}
