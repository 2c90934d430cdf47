//! What a page handler returns: `Page` is `Result<Response, Response>`, so a handler uses `?`
//! on anything that fails — a refusal already rendered (`require_session`, `project_for`), or
//! an error turned into this visitor's error page by `.or_page(&web)`.

use axum::response::Response;

use super::Web;
use crate::error::AppError;

pub type Page = Result<Response, Response>;

pub trait OrPage<T> {
    /// The value, or the error page (with this visitor's navigation): 503 or 507 for a
    /// failing part (`AppError::of`), else the 500 page that logs `error`.
    fn or_page(self, web: &Web) -> Result<T, Response>;
}

impl<T, E: std::fmt::Display + 'static> OrPage<T> for Result<T, E> {
    fn or_page(self, web: &Web) -> Result<T, Response> {
        self.map_err(|e| web.error(AppError::of(e)))
    }
}
