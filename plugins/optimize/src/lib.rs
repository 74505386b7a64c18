//! Placeholder: the optimize plugin is being written.
