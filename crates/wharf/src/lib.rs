//! wharf: a Python package index server. See `docs/DESIGN.md` for the map.

pub mod accounts;
pub mod actor;
pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod email;
pub mod error;
pub mod events;
pub mod files;
pub mod forklift;
pub mod import;
pub mod manage;
pub mod observe;
pub mod oidc;
pub mod packaging;
pub mod proxy;
pub mod ratelimit;
pub mod reader;
pub mod request;
pub mod router;
pub mod server;
pub mod signing;
pub mod simple;
pub mod site;
pub mod state;
pub mod storage;
pub mod tasks;
pub mod templates;
pub mod tokens;
pub mod twofactor;
pub mod web;

/// The version and the commit it was built from, e.g. `0.1.0 (3861709a1b2c)`.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("WHARF_COMMIT"), ")");
