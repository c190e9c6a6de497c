//! elementwise (to be written).
