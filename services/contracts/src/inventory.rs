//! inventory-service API types: `POST /reservations` → 201, or 409 with error code `out_of_stock`.

use serde::{Deserialize, Serialize};

use crate::orders::LineItem;

/// `POST /reservations` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRequest {
    pub order_id: String,
    pub items: Vec<LineItem>,
}

/// `POST /reservations` answer (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationResponse {
    pub reservation_id: String,
    pub order_id: String,
    pub status: String,
}
