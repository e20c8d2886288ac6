//! inventory-service API types: `POST /reservations` → 201, or 409 with error code `out_of_stock`;
//! `GET /stock/{sku}` and `PUT /admin/stock` read and set a shelf.

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

/// `GET /stock/{sku}` answer, and `PUT /admin/stock` body (`reserved` ignored there): what is on
/// the shelf. order-service reads it before charging when `check_stock_first` is on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockLevel {
    pub sku: String,
    pub available: i64,
    #[serde(default)]
    pub reserved: i64,
}
