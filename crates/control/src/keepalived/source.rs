//! Reading the configuration's text: the main file and what it includes, into one stream of
//! tokens. `include PATTERN` is read as keepalived reads it: a glob (with csh-style `{a,b}`
//! alternatives) relative to the directory of the file that includes it, the files it matches
//! in name order, nested up to [`MAX_INCLUDE_DEPTH`]; a file that includes itself (directly or
//! not) is an error. A pattern without wildcards that names no file is an error; a wildcard
//! that matches nothing is not (keepalived's `conf.d/*`).

use super::lexer::{tokenize, Kind, Token};
use super::LoadError;
use std::path::{Path, PathBuf};

/// Largest file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most bytes read in all (the main file and everything it includes).
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;
/// Most tokens in all.
pub const MAX_TOKENS: usize = 4 << 20;
/// Deepest chain of includes.
pub const MAX_INCLUDE_DEPTH: usize = 8;
/// Most files read in all.
pub const MAX_FILES: usize = 1_000;
/// Most patterns one `{a,b}` include expands to.
const MAX_ALTERNATIVES: usize = 256;

/// A directive the reader does not apply (an include where no file can be read).
#[derive(Debug, Clone)]
pub(crate) struct Note {
    pub file: u32,
    pub line: u32,
    pub directive: String,
    pub message: String,
}

#[derive(Default)]
pub(crate) struct Reader {
    /// Display names of the files read, indexed by `Token::file`.
    pub files: Vec<String>,
    pub tokens: Vec<Token>,
    pub notes: Vec<Note>,
    total_bytes: u64,
    /// The chain of files being read (canonical paths), for cycles.
    stack: Vec<PathBuf>,
}

impl Reader {
    fn error(&self, file: u32, line: u32, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self
                .files
                .get(file as usize)
                .cloned()
                .unwrap_or_else(|| "?".to_string()),
            line,
            message: message.into(),
        }
    }

    /// Read `text` named `name`. `dir`: where its includes are looked up (`None`: includes are
    /// not read but reported).
    pub fn add_text(
        &mut self,
        text: &str,
        name: String,
        dir: Option<&Path>,
        depth: usize,
    ) -> Result<(), LoadError> {
        if self.files.len() >= MAX_FILES {
            return Err(LoadError {
                file: name,
                line: 0,
                message: format!("more than {MAX_FILES} files included"),
            });
        }
        let idx = self.files.len() as u32;
        self.files.push(name);
        let mut local = Vec::new();
        let room = MAX_TOKENS.saturating_sub(self.tokens.len());
        tokenize(text, idx, room, &mut local).map_err(|e| self.error(idx, e.line, e.message))?;
        for t in local {
            if t.kind != Kind::Include {
                if self.tokens.len() >= MAX_TOKENS {
                    return Err(self.error(idx, t.line, format!("more than {MAX_TOKENS} tokens")));
                }
                self.tokens.push(t);
                continue;
            }
            let Some(dir) = dir else {
                self.notes.push(Note {
                    file: idx,
                    line: t.line,
                    directive: "include".to_string(),
                    message: format!(
                        "{} is not read: only a configuration loaded from a file reads includes",
                        t.text
                    ),
                });
                continue;
            };
            if t.text.is_empty() {
                return Err(self.error(idx, t.line, "include needs a file name or pattern"));
            }
            let paths = self.expand(&t, dir)?;
            for p in paths {
                self.add_file(&p, depth + 1, Some((idx, t.line)))?;
            }
        }
        Ok(())
    }

    /// The files an include names, in order.
    fn expand(&self, t: &Token, dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
        let alts = braces(&t.text, MAX_ALTERNATIVES).map_err(|m| self.error(t.file, t.line, m))?;
        let mut out = Vec::new();
        for alt in alts {
            let full = if alt.starts_with('/') {
                alt.clone()
            } else {
                format!(
                    "{}/{}",
                    glob::Pattern::escape(&dir.to_string_lossy()).trim_end_matches('/'),
                    alt
                )
            };
            let wild = alt.contains(['*', '?', '[']);
            let matches = glob::glob(&full).map_err(|e| {
                self.error(t.file, t.line, format!("include {alt}: bad pattern: {e}"))
            })?;
            let mut n = 0;
            for m in matches {
                let p = m.map_err(|e| self.error(t.file, t.line, format!("include {alt}: {e}")))?;
                if p.is_dir() {
                    continue;
                }
                n += 1;
                out.push(p);
            }
            if n == 0 && !wild {
                return Err(self.error(
                    t.file,
                    t.line,
                    format!("include {alt}: no such file ({full})"),
                ));
            }
        }
        Ok(out)
    }

    /// Read the file at `path`; `from` is the include that names it.
    pub fn add_file(
        &mut self,
        path: &Path,
        depth: usize,
        from: Option<(u32, u32)>,
    ) -> Result<(), LoadError> {
        let name = path.display().to_string();
        let at = |me: &Self, message: String| match from {
            Some((f, l)) => me.error(f, l, message),
            None => LoadError {
                file: name.clone(),
                line: 0,
                message,
            },
        };
        if depth > MAX_INCLUDE_DEPTH {
            return Err(at(
                self,
                format!(
                    "includes nested deeper than {MAX_INCLUDE_DEPTH} levels (including {name})"
                ),
            ));
        }
        let canon = path
            .canonicalize()
            .map_err(|e| at(self, format!("cannot read {name}: {e}")))?;
        if self.stack.contains(&canon) {
            let chain: Vec<String> = self
                .stack
                .iter()
                .chain(std::iter::once(&canon))
                .map(|p| p.display().to_string())
                .collect();
            return Err(at(self, format!("include cycle: {}", chain.join(" -> "))));
        }
        let meta =
            std::fs::metadata(&canon).map_err(|e| at(self, format!("cannot read {name}: {e}")))?;
        if !meta.is_file() {
            return Err(at(self, format!("{name} is not a regular file")));
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(at(
                self,
                format!("{name} is larger than {} MiB", MAX_FILE_BYTES >> 20),
            ));
        }
        if self.total_bytes + meta.len() > MAX_TOTAL_BYTES {
            return Err(at(
                self,
                format!(
                    "the configuration and its includes are larger than {} MiB",
                    MAX_TOTAL_BYTES >> 20
                ),
            ));
        }
        let bytes =
            std::fs::read(&canon).map_err(|e| at(self, format!("cannot read {name}: {e}")))?;
        // The file may have grown since its size was looked at.
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(at(
                self,
                format!("{name} is larger than {} MiB", MAX_FILE_BYTES >> 20),
            ));
        }
        self.total_bytes += bytes.len() as u64;
        let text = String::from_utf8(bytes).map_err(|e| {
            at(
                self,
                format!(
                    "{name} is not UTF-8 text (at byte {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        let dir = canon.parent().map(Path::to_path_buf).unwrap_or_default();
        self.stack.push(canon);
        let r = self.add_text(&text, name, Some(&dir), depth);
        self.stack.pop();
        r
    }
}

/// csh-style brace alternatives: `a{b,c}d` is `abd`, `acd`; nested and several groups
/// multiply, up to `max` patterns. A `{` without its `}` is a character like any other.
pub(crate) fn braces(s: &str, max: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    expand_into(s, max, &mut out, 0)?;
    Ok(out)
}

fn expand_into(s: &str, max: usize, out: &mut Vec<String>, depth: usize) -> Result<(), String> {
    if depth > 16 {
        return Err("include: braces nested too deep".to_string());
    }
    let b = s.as_bytes();
    let Some(open) = s.find('{') else {
        if out.len() >= max {
            return Err(format!("include: more than {max} alternatives"));
        }
        out.push(s.to_string());
        return Ok(());
    };
    // Its matching `}` and the commas at its level.
    let mut level = 0usize;
    let mut commas = Vec::new();
    let mut close = None;
    for (i, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => level += 1,
            b'}' => {
                level -= 1;
                if level == 0 {
                    close = Some(i);
                    break;
                }
            }
            b',' if level == 1 => commas.push(i),
            _ => {}
        }
    }
    let Some(close) = close else {
        if out.len() >= max {
            return Err(format!("include: more than {max} alternatives"));
        }
        out.push(s.to_string());
        return Ok(());
    };
    let (pre, post) = (&s[..open], &s[close + 1..]);
    let mut start = open + 1;
    for end in commas.into_iter().chain(std::iter::once(close)) {
        let alt = &s[start..end];
        expand_into(&format!("{pre}{alt}{post}"), max, out, depth + 1)?;
        start = end + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brace_alternatives() {
        assert_eq!(braces("a{b,c}d", 9).unwrap(), ["abd", "acd"]);
        assert_eq!(braces("{x/{,y},z}", 9).unwrap(), ["x/", "x/y", "z"]);
        assert_eq!(braces("plain", 9).unwrap(), ["plain"]);
        assert_eq!(braces("open{a,b", 9).unwrap(), ["open{a,b"]);
        assert!(braces("{a,b}{c,d}{e,f}", 4)
            .unwrap_err()
            .contains("more than 4"));
    }
}
