//! mean (to be written).
