//! Placeholder: the flashback plugin is being written.
