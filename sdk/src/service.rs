//! Service control helpers (being written).
