//! conv2d (to be written).
