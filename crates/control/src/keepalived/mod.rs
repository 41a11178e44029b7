//! keepalived.conf: the `virtual_server` blocks of a keepalived configuration read as rvs
//! services, real servers and health checks ([`load`], [`parse_str`]). See docs/keepalived.md.
//!
//! The grammar is keepalived's ([`lexer`]): words separated by blanks, `{`/`}` blocks, `#` and `!`
//! comments, `"..."` strings, `include` globs relative to the including file. Every directive
//! is either applied or listed in [`Config::unsupported`] with its file and line; whole blocks
//! rvs does not read (`global_defs`, `vrrp_*`, ...) are listed once. Values that are wrong (a bad
//! address, a number out of range, an unknown keyword, unbalanced braces) are a [`LoadError`]
//! with file and line, and nothing is returned: a configuration is taken whole or not at all.
//!
//! Nothing here panics on any input, and every size is bounded (16 MiB a file, 64 MiB in all,
//! 8 levels of includes, 32 of blocks).

mod lexer;
mod map;
mod source;
mod tree;

#[cfg(test)]
mod tests;

pub use source::{MAX_FILE_BYTES, MAX_INCLUDE_DEPTH, MAX_TOTAL_BYTES};

use crate::check::{ServerHealth, ServiceHealth};
use crate::ha::HaConfig;
use rvs_dataplane::model::{ServerSpec, ServiceSpec};
use std::fmt;
use std::path::Path;

/// What a keepalived configuration gives rvs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// One per address and port (a `virtual_server group` gives one per address of its group).
    pub services: Vec<VirtualServer>,
    /// Every directive read but not applied, in the order met.
    pub unsupported: Vec<Diagnostic>,
    /// The VRRP instances and scripts (`vrrp_instance`, `vrrp_script`, with `global_defs`'
    /// `vrrp_version` and `vrrp_garp_*` defaults) and connection sync (`global_defs {
    /// lvs_sync_daemon IF INSTANCE }`), validated ([`HaConfig::validate`]). keepalived's
    /// default `vrrp_version` 2 applies where none is given.
    pub ha: HaConfig,
}

/// A service with its real servers and health settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServer {
    pub spec: ServiceSpec,
    pub health: ServiceHealth,
    pub servers: Vec<RealServerConf>,
    /// Where its `virtual_server` block is.
    pub file: String,
    pub line: u32,
}

/// A real server of a service, with its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealServerConf {
    pub spec: ServerSpec,
    pub health: ServerHealth,
    /// Where its `real_server` block is.
    pub file: String,
    pub line: u32,
}

/// A directive read but not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: u32,
    pub directive: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: '{}' not supported: {}",
            self.file, self.line, self.directive, self.message
        )
    }
}

/// Why a configuration was refused: the file, the line (0: the file as a whole) and what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub file: String,
    pub line: u32,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

/// Read the keepalived configuration at `path` and everything it includes.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let mut r = source::Reader::default();
    r.add_file(path, 0, None)?;
    finish(r)
}

/// Read a keepalived configuration from `text`, named `name` in messages. Nothing is read
/// from the file system: an `include` here is not read but listed in
/// [`Config::unsupported`] (use [`load`] for a configuration with includes).
pub fn parse_str(text: &str, name: &str) -> Result<Config, LoadError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError {
            file: name.to_string(),
            line: 0,
            message: format!("larger than {} MiB", MAX_FILE_BYTES >> 20),
        });
    }
    let mut r = source::Reader::default();
    r.add_text(text, name.to_string(), None, 0)?;
    finish(r)
}

fn finish(r: source::Reader) -> Result<Config, LoadError> {
    let stmts = tree::build(&r.tokens).map_err(|e| LoadError {
        file: r.files.get(e.file as usize).cloned().unwrap_or_default(),
        line: e.line,
        message: e.message,
    })?;
    let mut unsupported: Vec<Diagnostic> = r
        .notes
        .iter()
        .map(|n| Diagnostic {
            file: r.files.get(n.file as usize).cloned().unwrap_or_default(),
            line: n.line,
            directive: n.directive.clone(),
            message: n.message.clone(),
        })
        .collect();
    let mut cfg = map::map(&stmts, &r.files)?;
    unsupported.append(&mut cfg.unsupported);
    cfg.unsupported = unsupported;
    // In the order of the text: by file (as first read), then line.
    let order = |f: &str| r.files.iter().position(|n| n == f).unwrap_or(usize::MAX);
    cfg.unsupported.sort_by_key(|d| (order(&d.file), d.line));
    Ok(cfg)
}
