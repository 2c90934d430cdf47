//! The baseline of the upload benchmark (`bench/uploads.sh`): an endpoint that does only
//! what any server must do with an upload, reading the multipart body and hashing the file,
//! then answers 200. `twine upload` against it costs what the client itself costs; the same
//! twine against wharf costs that plus wharf's own work.
//!
//! Usage: cargo run --release --manifest-path bench/upload-baseline/Cargo.toml -- 127.0.0.1:PORT

use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart};
use axum::http::StatusCode;
use axum::routing::post;
use sha2::{Digest, Sha256};

async fn upload(mut form: Multipart) -> (StatusCode, String) {
    let mut digest = None;
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let is_content = field.name() == Some("content");
                match field.bytes().await {
                    Ok(bytes) if is_content => digest = Some(hex::encode(Sha256::digest(&bytes))),
                    Ok(_) => {}
                    Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
                }
            }
            Ok(None) => break,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
    match digest {
        Some(digest) => (StatusCode::OK, digest),
        None => (StatusCode::BAD_REQUEST, "no content field".to_owned()),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18700".to_owned());
    let app = Router::new()
        .route("/legacy/", post(upload))
        .layer(DefaultBodyLimit::max(100 * 1024 * 1024));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
