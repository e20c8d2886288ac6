//! api-gateway's error type, mapped to status codes and the shared JSON body
//! `{"error":{"code","message"}}`, rendered (and logged once) by `service_kit::error`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contracts::error::codes;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON body: {0}")]
    InvalidJson(String),
    #[error("expected `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("request body exceeds the size limit")]
    PayloadTooLarge,
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
            Self::InvalidJson(_) | Self::BadBody | Self::UnknownScenario(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => codes::INVALID_JSON,
            Self::UnsupportedMediaType | Self::BadBody => codes::BAD_REQUEST,
            Self::PayloadTooLarge => codes::PAYLOAD_TOO_LARGE,
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
                Err(ApiError::PayloadTooLarge)
            }
            Err(_) => Err(ApiError::BadBody),
        }
    }
}
