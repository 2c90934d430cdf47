//! The HTTP/1.1 server under the router: hyper's connection driver with the limits that
//! `axum::serve` has no settings for. A client must send its headers within `header_timeout`
//! (idle kept-alive connections are closed after as long), at most `max_connections` are open
//! at once (beyond that the listener is not polled, so new clients wait in the kernel's
//! backlog rather than take memory), and on shutdown every connection finishes the request it
//! is answering, then closes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `stop` resolves, then lets every open connection finish
/// its request in flight and returns once all have closed (the caller bounds that wait).
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    stop: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection holds a receiver: `closing` tells them to finish, and the sender's
    // `closed()` resolves once the last of them is gone.
    let (closing, closing_rx) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    let mut warned_full = false;
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stop => break,
        };
        // Said once each time the limit is reached, not per connection.
        let full = permits.available_permits() == 0;
        if full && !warned_full {
            tracing::warn!(
                max_connections = limits.max_connections,
                "max_connections are open: new connections wait until one closes"
            );
        }
        warned_full = full;
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before it was accepted:
                    // wait a little rather than spin, and go on serving the others.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // No Nagle: a response larger than one segment must not wait for the delayed ACK.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let mut closing_rx = closing_rx.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    let router = router.clone();
                    async move {
                        let response = router
                            .oneshot(request.map(axum::body::Body::new))
                            .await
                            .unwrap_or_else(|never: Infallible| match never {});
                        Ok::<_, Infallible>(response)
                    }
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let connection = builder.serve_connection(TokioIo::new(tcp), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%error, %remote, "connection ended");
                    }
                }
                () = async { let _ = closing_rx.wait_for(|closing| *closing).await; } => {
                    connection.as_mut().graceful_shutdown();
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, %remote, "connection ended while stopping");
                    }
                }
            }
            drop(closing_rx);
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    drop(closing_rx);
    closing.closed().await;
}
