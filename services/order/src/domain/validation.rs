//! Request validation for `POST /orders`: the shared structural rules of
//! [`contracts::orders::CreateOrderRequest::validate`] (SKUs are checked against the products table
//! while pricing).

use contracts::orders::CreateOrderRequest;

use crate::error::ApiError;

pub fn validate(req: &CreateOrderRequest) -> Result<(), ApiError> {
    req.validate().map_err(ApiError::Validation)
}
