//! Placeholder: the reseed plugin is being written.
