//! Host integration tests and golden data.
