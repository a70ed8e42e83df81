//! JSON request bodies of the admin API: at most [`super::MAX_BODY`] bytes (413 beyond),
//! unknown fields refused by each body type, every failure a `{"error": …}` 400.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON body of type `T`.
#[derive(Debug)]
pub(super) struct JsonBody<T>(pub T);

/// A JSON body of type `T`, or `T::default()` when the body is empty or blank (compat for
/// routes whose body is optional); a body that is there must be valid.
#[derive(Debug)]
pub(super) struct OptionalJsonBody<T>(pub T);

fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body exceeds 64 KiB")
        }
        _ => ApiError::bad_request(format!("cannot read request body: {e}")),
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        parse_body(Bytes::from_request(req, state).await).map(Self)
    }
}

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(req, state).await;
        match &body {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Self(T::default())),
            _ => parse_body(body).map(Self),
        }
    }
}
