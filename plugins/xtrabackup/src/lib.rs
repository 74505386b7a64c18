//! Placeholder: the xtrabackup plugin is being written.
