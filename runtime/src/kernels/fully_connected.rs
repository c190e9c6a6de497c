//! fully_connected (to be written).
