//! Placeholder: the errorlog plugin is being written.
