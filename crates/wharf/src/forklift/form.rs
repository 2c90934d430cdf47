//! The upload form as the endpoint reads it: `wharf_packaging::upload_form` over the request's
//! body, its refusals as the errors clients get.

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use wharf_packaging::upload_form::{self, FormError, Refused};
pub(crate) use wharf_packaging::upload_form::{Content, LimitFor, UploadForm};

use crate::error::{AppError, AppResult};

pub(crate) async fn read(
    parts: &Parts,
    body: Body,
    tmp_dir: &std::path::Path,
    limits: &impl LimitFor<Error = AppError>,
) -> AppResult<UploadForm> {
    let boundary = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(upload_form::boundary)
        .ok_or_else(|| {
            AppError::bad_request(
                "Invalid request: the body must be multipart/form-data with a boundary.",
            )
        })?;
    upload_form::read(body.into_data_stream(), &boundary, tmp_dir, limits)
        .await
        .map_err(|refused| match refused {
            Refused::Limit(error) => error,
            Refused::Form(FormError::FileTooLarge { project, limit }) => {
                super::file_too_large(&project, limit)
            }
            // A full disk or a failing one: a fault of the server, not of the form.
            Refused::Form(FormError::Io(error)) => AppError::from(error),
            Refused::Form(error) => AppError::bad_request(error.to_string()),
        })
}
