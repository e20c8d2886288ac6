//! api-gateway's error type, mapped to status codes and the shared JSON body
//! `{"error":{"code","message"}}`, rendered (and logged once) by `service_kit::error`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::error::codes;
use service_kit::error::BadRequest;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    #[error("could not read the request body")]
    BadBody,
    #[error("{0}")]
    Validation(String),
    #[error(transparent)]
    UnknownScenario(#[from] contracts::scenario::UnknownScenario),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("order-service did not answer within {0} ms")]
    UpstreamTimeout(u64),
    #[error("order-service is unavailable: {0}")]
    Upstream(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(b) => b.status(),
            Self::BadBody | Self::UnknownScenario(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(b) => b.code(),
            Self::BadBody => codes::BAD_REQUEST,
            Self::Validation(_) => codes::VALIDATION_FAILED,
            Self::UnknownScenario(_) => codes::UNKNOWN_SCENARIO,
            Self::Unauthorized(_) => codes::UNAUTHORIZED,
            Self::UpstreamTimeout(_) => codes::UPSTREAM_TIMEOUT,
            Self::Upstream(_) => codes::UPSTREAM_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = service_kit::error::render(&self, status, self.code());
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tracelab\""),
            );
        }
        response
    }
}

/// The raw request body, with the body-limit rejection turned into a JSON 413. The handler parses
/// it only after authentication, so an unauthenticated caller learns nothing about the body rules.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(BadRequest::PayloadTooLarge { limit: None }.into())
            }
            Err(_) => Err(ApiError::BadBody),
        }
    }
}
