//! Placeholder: the zfssnapback plugin is being written.
