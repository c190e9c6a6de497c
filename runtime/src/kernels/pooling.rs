//! pooling (to be written).
