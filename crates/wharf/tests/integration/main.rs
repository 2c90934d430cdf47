//! Integration tests: the whole app in-process, on SQLite, and on PostgreSQL when
//! `WHARF_TEST_DATABASE_URL` is set.

mod accounts;
mod admin_accounts;
mod audit;
mod browser;
mod census;
mod files;
mod history;
mod joining;
mod limits;
mod manage;
mod observe;
mod oidc;
mod ops;
mod permissions;
mod platform_tags;
mod private_index;
mod proxy;
mod proxy_faults;
mod proxy_pages;
mod read;
mod schema;
mod snapshots;
mod sso;
mod token_lifecycle;
mod tokens;
mod two_factor;
mod upload;
mod upload_auth;
mod util;
mod web_security;
