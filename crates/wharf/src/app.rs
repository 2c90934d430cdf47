//! The names the binary and the tests start from: the state, the router, and the request
//! helpers, each defined in its own module (`state`, `router`, `request`, `tasks`).

pub use crate::request::{client_ip, rate_key, request_meta};
pub use crate::router::router;
pub use crate::state::AppState;
pub use crate::tasks::spawn_cache_refresher;
