//! Tokens into directives: a keyword, its arguments (the words up to the end of the line, a
//! `{` or a `}`), and its block when a `{` follows (on the same line or the next ones).

use super::lexer::{Kind, Token};

/// Deepest nesting of blocks read (keepalived's own grammar needs 4).
pub(crate) const MAX_DEPTH: usize = 32;

/// One directive.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub kw: Token,
    pub args: Vec<Token>,
    pub block: Option<Vec<Stmt>>,
}

impl Stmt {
    pub fn name(&self) -> &str {
        &self.kw.text
    }
    #[cfg(test)]
    pub fn line(&self) -> u32 {
        self.kw.line
    }
}

/// Where and why the structure is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeError {
    pub file: u32,
    pub line: u32,
    pub message: String,
}

/// Build the directives of a whole configuration (includes already spliced in).
pub(crate) fn build(tokens: &[Token]) -> Result<Vec<Stmt>, TreeError> {
    let mut pos = 0;
    let stmts = block(tokens, &mut pos, 0, None)?;
    Ok(stmts)
}

fn err(t: &Token, message: impl Into<String>) -> TreeError {
    TreeError {
        file: t.file,
        line: t.line,
        message: message.into(),
    }
}

/// Read directives until the `}` that closes the block opened by `open` (or the end of the
/// input at the top level, `open` = `None`).
fn block(
    tokens: &[Token],
    pos: &mut usize,
    depth: usize,
    open: Option<&Token>,
) -> Result<Vec<Stmt>, TreeError> {
    let mut out = Vec::new();
    loop {
        let Some(t) = tokens.get(*pos) else {
            return match open {
                None => Ok(out),
                Some(o) => Err(err(
                    o,
                    format!(
                        "the block opened here is not closed: missing '}}' before the end of the {}",
                        "configuration"
                    ),
                )),
            };
        };
        match t.kind {
            Kind::Eol => *pos += 1,
            Kind::Close => {
                *pos += 1;
                return match open {
                    Some(_) => Ok(out),
                    None => Err(err(t, "unexpected '}' (no block is open)")),
                };
            }
            Kind::Open => {
                return Err(err(t, "unexpected '{' (a block must follow a keyword)"));
            }
            Kind::Include => {
                // The reader replaces includes; one left here is a reader bug, refused.
                return Err(err(t, "include was not expanded"));
            }
            Kind::Word => {
                let kw = t.clone();
                *pos += 1;
                let mut args = Vec::new();
                while let Some(a) = tokens.get(*pos) {
                    if a.kind != Kind::Word {
                        break;
                    }
                    args.push(a.clone());
                    *pos += 1;
                }
                // A `{` after the arguments, on this line or after blank lines, opens its block.
                let mut look = *pos;
                while tokens.get(look).is_some_and(|x| x.kind == Kind::Eol) {
                    look += 1;
                }
                let mut body = None;
                if let Some(o) = tokens.get(look) {
                    if o.kind == Kind::Open {
                        if depth + 1 > MAX_DEPTH {
                            return Err(err(
                                o,
                                format!("blocks nested deeper than {MAX_DEPTH} levels"),
                            ));
                        }
                        *pos = look + 1;
                        body = Some(block(tokens, pos, depth + 1, Some(o))?);
                    }
                }
                out.push(Stmt {
                    kw,
                    args,
                    block: body,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::tokenize;
    use super::*;

    fn tree(text: &str) -> Result<Vec<Stmt>, TreeError> {
        let mut toks = Vec::new();
        tokenize(text, 0, 100_000, &mut toks).unwrap();
        build(&toks)
    }

    #[test]
    fn directives_arguments_and_blocks() {
        let s = tree("a 1 2 {\n b\n c 3 { d }\n}\ne\n{\nf\n}\ng").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name(), "a");
        assert_eq!(s[0].args.len(), 2);
        let inner = s[0].block.as_ref().unwrap();
        assert_eq!(inner[1].name(), "c");
        assert_eq!(inner[1].block.as_ref().unwrap()[0].name(), "d");
        // `{` on the line after its keyword.
        assert_eq!(s[1].name(), "e");
        assert_eq!(s[1].block.as_ref().unwrap()[0].line(), 7);
        assert!(s[2].block.is_none());
    }

    #[test]
    fn arguments_stop_at_a_closing_brace() {
        let s = tree("url { path /x }").unwrap();
        let b = s[0].block.as_ref().unwrap();
        assert_eq!(b[0].args[0].text, "/x");
    }

    #[test]
    fn unbalanced_braces_say_where() {
        let e = tree("a {\n b {\n }\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("not closed"), "{e:?}");
        let e = tree("a\n}\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unexpected '}'"));
        let e = tree("a { }\n{ b }").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unexpected '{'"));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = "a {".repeat(MAX_DEPTH + 1) + &"}".repeat(MAX_DEPTH + 1);
        let e = tree(&deep).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e:?}");
        let ok = "a {".repeat(MAX_DEPTH) + &"}".repeat(MAX_DEPTH);
        assert!(tree(&ok).is_ok());
    }
}
