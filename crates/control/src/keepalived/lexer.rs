//! keepalived.conf's tokens, as keepalived splits them: words separated by blanks, `{` and `}`
//! as tokens of their own (also when written against a word, as keepalived splits a line at
//! them), `"..."` one word without its quotes, `#` and `!` comments to the end of the line
//! (outside quotes; `\#` and `\!` are the characters themselves), a `\` at the end of a line
//! continues it on the next. `include` lines are kept whole (their argument is a glob, where
//! braces mean alternatives).

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Word,
    Open,
    Close,
    /// The end of a line: a directive's arguments stop here.
    Eol,
    /// `include PATTERN` (and keepalived's variants): `text` is the pattern.
    Include,
}

/// One token, with where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub text: String,
    /// Written between double quotes.
    pub quoted: bool,
    /// Index of the file in the reader's file list.
    pub file: u32,
    pub line: u32,
}

/// keepalived's include keywords: `include` and its checking variants, which rvs reads alike.
pub(crate) const INCLUDE_WORDS: [&str; 6] = [
    "include", "includer", "includem", "includew", "includeb", "includea",
];

/// A lexing error: the line and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexError {
    pub line: u32,
    pub message: String,
}

/// Split `text` (one file, `file` its index) into tokens, appending to `out`. Refuses more than
/// `max_tokens` tokens in `out` in all.
pub(crate) fn tokenize(
    text: &str,
    file: u32,
    max_tokens: usize,
    out: &mut Vec<Token>,
) -> Result<(), LexError> {
    let mut line_no: u32 = 0;
    // The line a continued line started on, and whether a continuation is pending.
    let mut continued = false;
    for raw in text.split('\n') {
        line_no = line_no.saturating_add(1);
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let was_continued = continued;
        continued = false;
        let trimmed = raw.trim_start_matches([' ', '\t']);
        // An include line, taken whole (only at the start of a line, as keepalived).
        if !was_continued {
            if let Some((word, rest)) = split_first_word(trimmed) {
                if INCLUDE_WORDS.contains(&word) {
                    let arg = strip_comment(rest).trim().to_string();
                    push(
                        out,
                        max_tokens,
                        line_no,
                        Token {
                            kind: Kind::Include,
                            text: arg,
                            quoted: false,
                            file,
                            line: line_no,
                        },
                    )?;
                    push_eol(out, max_tokens, file, line_no)?;
                    continue;
                }
            }
        }
        let bytes = trimmed.as_bytes();
        let mut i = 0;
        let mut word = String::new();
        let mut in_word = false;
        while i < bytes.len() {
            let c = bytes[i];
            match c {
                b' ' | b'\t' | b'\x0b' | b'\x0c' => {
                    flush(out, max_tokens, &mut word, &mut in_word, file, line_no)?;
                    i += 1;
                }
                b'#' | b'!' => break,
                b'\\' => {
                    if i + 1 == bytes.len() {
                        continued = true;
                        i += 1;
                    } else if bytes[i + 1] == b'#' || bytes[i + 1] == b'!' {
                        word.push(bytes[i + 1] as char);
                        in_word = true;
                        i += 2;
                    } else {
                        word.push('\\');
                        in_word = true;
                        i += 1;
                    }
                }
                b'"' => {
                    flush(out, max_tokens, &mut word, &mut in_word, file, line_no)?;
                    let rest = &trimmed[i + 1..];
                    let Some(end) = rest.find('"') else {
                        return Err(LexError {
                            line: line_no,
                            message: "unterminated quote (a quoted string ends on its line)"
                                .to_string(),
                        });
                    };
                    push(
                        out,
                        max_tokens,
                        line_no,
                        Token {
                            kind: Kind::Word,
                            text: rest[..end].to_string(),
                            quoted: true,
                            file,
                            line: line_no,
                        },
                    )?;
                    i += end + 2;
                }
                b'{' | b'}' => {
                    flush(out, max_tokens, &mut word, &mut in_word, file, line_no)?;
                    push(
                        out,
                        max_tokens,
                        line_no,
                        Token {
                            kind: if c == b'{' { Kind::Open } else { Kind::Close },
                            text: (c as char).to_string(),
                            quoted: false,
                            file,
                            line: line_no,
                        },
                    )?;
                    i += 1;
                }
                _ => {
                    // A whole UTF-8 character (the text is valid UTF-8).
                    let ch = trimmed[i..].chars().next().unwrap_or('\u{fffd}');
                    word.push(ch);
                    in_word = true;
                    i += ch.len_utf8().max(1);
                }
            }
        }
        flush(out, max_tokens, &mut word, &mut in_word, file, line_no)?;
        if !continued {
            push_eol(out, max_tokens, file, line_no)?;
        }
    }
    Ok(())
}

fn split_first_word(s: &str) -> Option<(&str, &str)> {
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    Some((&s[..end], &s[end..]))
}

/// The text before a comment (`#` or `!` outside double quotes).
fn strip_comment(s: &str) -> &str {
    let mut quote = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quote = !quote,
            '#' | '!' if !quote => return &s[..i],
            _ => {}
        }
    }
    s
}

fn push(out: &mut Vec<Token>, max: usize, line: u32, t: Token) -> Result<(), LexError> {
    if out.len() >= max {
        return Err(LexError {
            line,
            message: format!("more than {max} tokens"),
        });
    }
    out.push(t);
    Ok(())
}

fn push_eol(out: &mut Vec<Token>, max: usize, file: u32, line: u32) -> Result<(), LexError> {
    // Consecutive line ends say nothing more than one.
    if matches!(out.last(), Some(t) if t.kind == Kind::Eol) {
        return Ok(());
    }
    push(
        out,
        max,
        line,
        Token {
            kind: Kind::Eol,
            text: String::new(),
            quoted: false,
            file,
            line,
        },
    )
}

fn flush(
    out: &mut Vec<Token>,
    max: usize,
    word: &mut String,
    in_word: &mut bool,
    file: u32,
    line: u32,
) -> Result<(), LexError> {
    if *in_word {
        push(
            out,
            max,
            line,
            Token {
                kind: Kind::Word,
                text: std::mem::take(word),
                quoted: false,
                file,
                line,
            },
        )?;
        *in_word = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(text: &str) -> Vec<(Kind, String, u32)> {
        let mut out = Vec::new();
        tokenize(text, 0, 10_000, &mut out).unwrap();
        out.into_iter().map(|t| (t.kind, t.text, t.line)).collect()
    }

    fn words(text: &str) -> Vec<String> {
        lex(text)
            .into_iter()
            .filter(|t| t.0 != Kind::Eol)
            .map(|t| t.1)
            .collect()
    }

    #[test]
    fn blanks_braces_and_lines() {
        let t = lex("virtual_server 198.18.0.10 80 {\n\tdelay_loop 6\n}\n");
        use Kind::*;
        assert_eq!(
            t,
            vec![
                (Word, "virtual_server".into(), 1),
                (Word, "198.18.0.10".into(), 1),
                (Word, "80".into(), 1),
                (Open, "{".into(), 1),
                (Eol, "".into(), 1),
                (Word, "delay_loop".into(), 2),
                (Word, "6".into(), 2),
                (Eol, "".into(), 2),
                (Close, "}".into(), 3),
                (Eol, "".into(), 3),
            ]
        );
        // Braces against words are split off, as keepalived splits a line at them.
        assert_eq!(words("url{path /x}"), ["url", "{", "path", "/x", "}"]);
    }

    #[test]
    fn comments_both_kinds_anywhere_and_escaped() {
        assert_eq!(
            words("weight 2 # two\n! all of it\nalpha ! on"),
            ["weight", "2", "alpha"]
        );
        assert_eq!(words(r"path /a\#b\!c"), ["path", "/a#b!c"]);
        assert_eq!(words(r"misc_path /x\y"), ["misc_path", r"/x\y"]);
    }

    #[test]
    fn quotes_keep_blanks_and_comment_characters() {
        let mut out = Vec::new();
        tokenize(
            r#"misc_path "/bin/check -a 'b c' # not a comment" tail"#,
            0,
            99,
            &mut out,
        )
        .unwrap();
        assert_eq!(out[1].text, "/bin/check -a 'b c' # not a comment");
        assert!(out[1].quoted && !out[0].quoted);
        assert_eq!(out[2].text, "tail");
        assert_eq!(words(r#"a"b"c"#), ["a", "b", "c"]);
        assert_eq!(words(r#"x """#), ["x", ""]);
        let err = tokenize("ok\nmisc_path \"/bin/x\n", 0, 99, &mut Vec::new()).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("unterminated quote"), "{err:?}");
    }

    #[test]
    fn continuation_joins_lines_and_keeps_line_numbers() {
        let t = lex("quorum_up /bin/up \\\n   arg\nweight 1");
        assert_eq!(t[0], (Kind::Word, "quorum_up".into(), 1));
        assert_eq!(t[2], (Kind::Word, "arg".into(), 2));
        assert_eq!(t[3].0, Kind::Eol);
        assert_eq!(t[4], (Kind::Word, "weight".into(), 3));
    }

    #[test]
    fn include_lines_are_kept_whole() {
        let t = lex("  include conf.d/{a,b}.conf # two files\nincludex y");
        assert_eq!(t[0], (Kind::Include, "conf.d/{a,b}.conf".into(), 1));
        assert_eq!(t[2], (Kind::Word, "includex".into(), 2));
        assert_eq!(lex("includer  *.conf")[0].0, Kind::Include);
    }

    #[test]
    fn crlf_and_odd_bytes_do_not_break_it() {
        assert_eq!(words("a\r\nb\r\n"), ["a", "b"]);
        assert_eq!(words("é{ü}"), ["é", "{", "ü", "}"]);
        assert_eq!(words("\\"), Vec::<String>::new());
    }

    #[test]
    fn token_limit_is_an_error() {
        let err = tokenize("a b c d", 0, 3, &mut Vec::new()).unwrap_err();
        assert!(err.message.contains("more than 3 tokens"));
    }
}
