//! Placeholder: the service plugin is being written.
