//! pin
