//! The suite (under construction).
