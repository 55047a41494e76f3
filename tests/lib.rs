//! Workspace-level tests of Levee (see `file_mode.rs` and `real_data.rs`); this library is empty.
