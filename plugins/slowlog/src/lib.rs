//! Placeholder: the slowlog plugin is being written.
