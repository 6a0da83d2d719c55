//! libxl xenbus device model: vif and pci frontend/backend layout, states.
//!
//! (Being written; see the crate's issue.)
