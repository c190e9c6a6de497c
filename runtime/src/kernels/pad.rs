//! pad (to be written).
