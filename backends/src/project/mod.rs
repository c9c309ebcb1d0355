//! A project's store as a whole: where it is ([`layout`], [`state_home`]), its
//! [`config`].yaml, creating it ([`init`]) and opening it through the [`registry`] of
//! backends.

pub(crate) mod config;
pub(crate) mod init;
pub(crate) mod layout;
pub(crate) mod registry;
pub(crate) mod relocate;
pub mod state_home;
