//! Log shipping helpers (being written).
