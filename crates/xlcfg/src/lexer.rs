//! The xl.cfg lexer, mirroring libxlutil's flex scanner (`libxlu_cfg_l.l`,
//! observed through the vectors: SPEC.md §1.2, §1.4, §1.6, §1.7).
//!
//! It produces the whole event stream up front (linear in the input). Junk
//! words and escape errors are events of their own so that the parser can
//! report them at the moment the reference does: when it asks for the token
//! that follows them.

use std::ops::Range;

/// A token kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// `[a-z][._0-9a-z]*`
    Ident,
    /// `[0-9][0-9a-fx]*` (not validated).
    Number,
    /// A quoted string, decoded.
    Str(Vec<u8>),
    Eq,
    PlusEq,
    Comma,
    LBracket,
    RBracket,
    Semi,
    /// `\n`, or a comment together with its `\n`.
    Newline,
    Eof,
}

/// A token with its byte span and 1-based start line.
#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub span: Range<usize>,
    pub line: usize,
}

/// One lexer event.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    Token(Token),
    /// A word starting with an illegal character (reported as a lexical
    /// error, unless `dropped`: the illegal character was the last byte of
    /// the input, which the reference silently ignores).
    Junk {
        span: Range<usize>,
        line: usize,
        dropped: bool,
        python: bool,
        /// The newline after the word was consumed with it.
        ate_newline: bool,
    },
    /// A bad escape in the string token that follows.
    EscapeError {
        span: Range<usize>,
        line: usize,
        message: &'static str,
    },
    /// A numeric escape whose digits were silently dropped.
    EscapeDropped {
        span: Range<usize>,
    },
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_'
}

fn is_number_char(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'x'
}

/// Lex the whole input.
pub(crate) fn lex(src: &[u8]) -> Vec<Event> {
    let mut ev = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    let n = src.len();
    let push = |ev: &mut Vec<Event>, tok: Tok, s: usize, e: usize, line: usize| {
        ev.push(Event::Token(Token {
            tok,
            span: s..e,
            line,
        }));
    };
    while pos < n {
        let c = src[pos];
        match c {
            b' ' | b'\t' => pos += 1,
            b'\n' => {
                push(&mut ev, Tok::Newline, pos, pos + 1, line);
                pos += 1;
                line += 1;
            }
            b'#' if src[pos..].contains(&b'\n') => {
                let nl = pos + src[pos..].iter().position(|&b| b == b'\n').unwrap_or(0);
                push(&mut ev, Tok::Newline, pos, nl + 1, line);
                pos = nl + 1;
                line += 1;
            }
            b'a'..=b'z' => {
                let s = pos;
                while pos < n && is_ident_char(src[pos]) {
                    pos += 1;
                }
                push(&mut ev, Tok::Ident, s, pos, line);
            }
            b'0'..=b'9' => {
                let s = pos;
                while pos < n && is_number_char(src[pos]) {
                    pos += 1;
                }
                push(&mut ev, Tok::Number, s, pos, line);
            }
            b'"' | b'\'' => match string_end(src, pos) {
                Some(end) => {
                    let (value, problem) = dequote(&src[pos + 1..end - 1]);
                    match problem {
                        Some(EscapeProblem::Error(message)) => ev.push(Event::EscapeError {
                            span: pos..end,
                            line,
                            message,
                        }),
                        Some(EscapeProblem::Dropped) => {
                            ev.push(Event::EscapeDropped { span: pos..end })
                        }
                        None => {}
                    }
                    push(&mut ev, Tok::Str(value), pos, end, line);
                    pos = end;
                }
                None => pos = junk(src, pos, &mut line, &mut ev),
            },
            b'=' => {
                push(&mut ev, Tok::Eq, pos, pos + 1, line);
                pos += 1;
            }
            b'+' if src.get(pos + 1) == Some(&b'=') => {
                push(&mut ev, Tok::PlusEq, pos, pos + 2, line);
                pos += 2;
            }
            b',' => {
                push(&mut ev, Tok::Comma, pos, pos + 1, line);
                pos += 1;
            }
            b'[' => {
                push(&mut ev, Tok::LBracket, pos, pos + 1, line);
                pos += 1;
            }
            b']' => {
                push(&mut ev, Tok::RBracket, pos, pos + 1, line);
                pos += 1;
            }
            b';' => {
                push(&mut ev, Tok::Semi, pos, pos + 1, line);
                pos += 1;
            }
            _ => pos = junk(src, pos, &mut line, &mut ev),
        }
    }
    push(&mut ev, Tok::Eof, n, n, line);
    ev
}

/// An illegal character starts a junk word running to the next blank.
fn junk(src: &[u8], start: usize, line: &mut usize, ev: &mut Vec<Event>) -> usize {
    let mut end = start + 1;
    while end < src.len() && !matches!(src[end], b' ' | b'\t' | b'\n') {
        end += 1;
    }
    // The reference's error rule also eats the blank that ends the word; a
    // newline eaten this way ends no statement but still counts as a line.
    let ate_newline = src.get(end) == Some(&b'\n');
    ev.push(Event::Junk {
        span: start..end,
        line: *line,
        dropped: start + 1 == src.len(),
        python: matches!(src[start], b'-' | b'+' | b'.' | b'(' | b')' | b':'),
        ate_newline,
    });
    if end < src.len() {
        if ate_newline {
            *line += 1;
        }
        end += 1;
    }
    end
}

/// End (exclusive, after the closing quote) of the string starting at `start`.
fn string_end(src: &[u8], start: usize) -> Option<usize> {
    let q = src[start];
    let mut j = start + 1;
    loop {
        let b = *src.get(j)?;
        if b == q {
            return Some(j + 1);
        }
        match b {
            b'\n' => return None,
            b'\\' => match src.get(j + 1) {
                Some(b'\n') | None => return None,
                Some(_) => j += 2,
            },
            _ => j += 1,
        }
    }
}

pub(crate) enum EscapeProblem {
    Error(&'static str),
    Dropped,
}

/// Number of bytes C `strtoul(s, &end, 10)` consumes (0 if no digits).
fn strtoul10_consumed(s: &[u8]) -> usize {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    if i < s.len() && matches!(s[i], b'+' | b'-') {
        i += 1;
    }
    let d = i;
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    if i == d { 0 } else { i }
}

/// Decode a string body as `xlu__cfgl_dequote` does (SPEC.md §1.4).
pub(crate) fn dequote(body: &[u8]) -> (Vec<u8>, Option<EscapeProblem>) {
    let mut out = Vec::with_capacity(body.len());
    let mut problem = None;
    let mut p = 0;
    while p < body.len() {
        let c = body[p];
        p += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&nc) = body.get(p) else { break };
        p += 1;
        match nc {
            b'"' | b'\'' | b'\\' => out.push(nc),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'x' => {
                // The reference skips one character and then needs more than
                // two of the next two to be hex digits: always an error.
                problem = Some(EscapeProblem::Error(
                    "invalid digit after backslash hexnumerical character escape in quoted string",
                ));
                return (out, problem);
            }
            b'0'..=b'7' => {
                // The up to three characters after the first digit are read
                // as a decimal number, must consume at least two, and are
                // dropped without emitting anything.
                let window = &body[p..(p + 3).min(body.len())];
                let used = strtoul10_consumed(window);
                if used <= 1 {
                    problem = Some(EscapeProblem::Error(
                        "invalid digit after backslash octalnumerical character escape in quoted string",
                    ));
                    return (out, problem);
                }
                p += used;
                problem = Some(EscapeProblem::Dropped);
            }
            _ => {
                problem = Some(EscapeProblem::Error(
                    "invalid character after backslash in quoted string",
                ));
                return (out, problem);
            }
        }
    }
    (out, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        lex(s.as_bytes())
            .into_iter()
            .filter_map(|e| match e {
                Event::Token(t) => Some(t.tok),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn number_then_ident_split_by_longest_match() {
        assert_eq!(toks("12abcg"), vec![Tok::Number, Tok::Ident, Tok::Eof]);
    }

    #[test]
    fn comment_without_newline_is_junk() {
        let ev = lex(b"#x");
        assert!(matches!(ev[0], Event::Junk { dropped: false, .. }));
        let ev = lex(b"#");
        assert!(matches!(ev[0], Event::Junk { dropped: true, .. }));
    }

    #[test]
    fn numeric_escape_drops_digits() {
        let (v, p) = dequote(br"A\101B");
        assert_eq!(v, b"AB");
        assert!(matches!(p, Some(EscapeProblem::Dropped)));
        let (_, p) = dequote(br"\12");
        assert!(matches!(p, Some(EscapeProblem::Error(_))));
    }
}
