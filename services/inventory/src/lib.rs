//! inventory-service (work in progress).
