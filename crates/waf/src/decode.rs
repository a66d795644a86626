//! The decodings an attacker uses to hide a payload, undone: percent-encoding (also
//! `%uXXXX`, and twice), HTML character references, and the shell's quoting tricks.

use std::borrow::Cow;

/// Percent-decodes `s` (and `+` as a space when `plus` is set); `%uXXXX` too. Invalid
/// escapes stay as they are. Bytes that are not UTF-8 become U+FFFD.
pub fn url(s: &str, plus: bool) -> Cow<'_, str> {
    if !(s.contains('%') || plus && s.contains('+')) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                if let Some(b) = hex2(bytes.get(i + 1..i + 3)) {
                    out.push(b);
                    i += 3;
                    continue;
                }
                if matches!(bytes.get(i + 1), Some(b'u' | b'U'))
                    && let (Some(hi), Some(lo)) =
                        (hex2(bytes.get(i + 2..i + 4)), hex2(bytes.get(i + 4..i + 6)))
                {
                    let c =
                        char::from_u32(u32::from(hi) << 8 | u32::from(lo)).unwrap_or('\u{fffd}');
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
                out.push(b'%');
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Whether `s` holds a `%` not followed by two hex digits (nor `u` and four).
pub fn has_bad_escape(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && hex2(bytes.get(i + 1..i + 3)).is_none()
            && !(matches!(bytes.get(i + 1), Some(b'u' | b'U'))
                && hex2(bytes.get(i + 2..i + 4)).is_some()
                && hex2(bytes.get(i + 4..i + 6)).is_some())
    })
}

fn hex2(pair: Option<&[u8]>) -> Option<u8> {
    let pair = pair?;
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

/// Decodes HTML character references: `&#60;`, `&#x3c;` (with or without the `;`), and the
/// named ones attackers use to hide a scheme or a tag (`&lt;`, `&colon;`, `&tab;`, …).
pub fn html(s: &str) -> Cow<'_, str> {
    if !s.contains('&') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match reference(rest) {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The character `s` (starting with `&`) refers to, and the reference's length.
fn reference(s: &str) -> Option<(char, usize)> {
    let body = &s[1..];
    if let Some(num) = body.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits
            .bytes()
            .take(8)
            .take_while(|b| (*b as char).is_digit(radix))
            .count();
        if len == 0 {
            return None;
        }
        let c = char::from_u32(u32::from_str_radix(&digits[..len], radix).ok()?)?;
        let semi = usize::from(digits[len..].starts_with(';'));
        return Some((c, 1 + skip + len + semi));
    }
    const NAMED: [(&str, char); 14] = [
        ("lt", '<'),
        ("gt", '>'),
        ("quot", '"'),
        ("apos", '\''),
        ("amp", '&'),
        ("colon", ':'),
        ("tab", '\t'),
        ("newline", '\n'),
        ("lpar", '('),
        ("rpar", ')'),
        ("sol", '/'),
        ("bsol", '\\'),
        ("semi", ';'),
        ("nbsp", ' '),
    ];
    let name_len = body.bytes().take_while(u8::is_ascii_alphabetic).count();
    let name = body[..name_len].to_ascii_lowercase();
    let &(_, c) = NAMED.iter().find(|(n, _)| *n == name)?;
    let semi = usize::from(body[name_len..].starts_with(';'));
    Some((c, 1 + name_len + semi))
}

/// The command line as a shell would see it once quoting tricks are undone (CRS's
/// `cmdLine`, except that `;` stays, as the separator the rules look for): `\`, `"`, `'` and
/// `^` removed, spaces before `/`, `(` and `;` removed, `,` made a space, runs of whitespace
/// made one space. Case stays: the rules that read this view ignore ASCII case (Unix
/// commands are lower case, Windows ignores case), so a value with capitals but no quoting
/// is its own command line and is scanned once with the other views.
pub fn cmd_line(s: &str) -> Cow<'_, str> {
    if cmd_line_unchanged(s) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(cmd_line_rewritten(s))
    }
}

fn cmd_line_rewritten(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        match c {
            '\\' | '"' | '\'' | '^' => {}
            ',' | ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' => space = true,
            '/' | '(' | ';' => {
                space = false;
                out.push(c);
            }
            c => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                out.push(c);
            }
        }
    }
    out
}

/// Whether [`cmd_line`] would give `s` back as it is (most values: no quoting, single spaces
/// between words), so nothing need be built.
fn cmd_line_unchanged(s: &str) -> bool {
    // Everything the rewrite changes is ASCII: bytes will do.
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' | b'"' | b'\'' | b'^' | b',' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c' => {
                return false;
            }
            // A space stays only with something before it and a word after it.
            b' ' if i == 0
                || matches!(bytes.get(i + 1), None | Some(b' ' | b'/' | b'(' | b';')) =>
            {
                return false;
            }
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_decoding_handles_plus_unicode_escapes_and_bad_escapes() {
        assert_eq!(url("a%20b+c", true), "a b c");
        assert_eq!(url("a%20b+c", false), "a b+c");
        assert_eq!(url("%u003cscript", false), "<script");
        assert_eq!(url("100%", false), "100%");
        assert_eq!(url("%zz%41", false), "%zzA");
        assert_eq!(url("%ED%95%9C%EA%B8%80", false), "한글");
        assert!(matches!(url("plain", true), Cow::Borrowed("plain")));
        assert!(has_bad_escape("100%"));
        assert!(has_bad_escape("%zz"));
        assert!(!has_bad_escape("%41%u0041"));
    }

    #[test]
    fn html_references_are_decoded_with_or_without_semicolons() {
        assert_eq!(html("&lt;script&gt;"), "<script>");
        assert_eq!(html("ja&Tab;vascript&colon;"), "ja\tvascript:");
        assert_eq!(html("&#60&#x3C;&#X3c;"), "<<<");
        assert_eq!(html("Tom & Jerry &unknown;"), "Tom & Jerry &unknown;");
    }

    #[test]
    fn cmd_line_gives_back_what_it_would_not_change() {
        for same in [
            "ls -la",
            "cat/etc/passwd",
            "a(b)",
            "x;y",
            "월세 관리비",
            "",
            "é",
            "INV-2026-11-0007",
            "Ls É",
        ] {
            assert!(matches!(cmd_line(same), Cow::Borrowed(_)), "{same}");
        }
        // Each of these changes, and the slow path says how: the fast check must agree.
        for (input, output) in [
            (" ls", "ls"),
            ("ls ", "ls"),
            ("ls  -l", "ls -l"),
            ("a /b", "a/b"),
            ("a (b", "a(b"),
            ("a ;b", "a;b"),
            ("a,b", "a b"),
        ] {
            assert_eq!(cmd_line(input), output, "{input}");
        }
    }

    /// The fast check says "unchanged" exactly when rewriting changes nothing: every string
    /// of up to four characters over the characters that matter.
    #[test]
    fn cmd_line_s_fast_check_agrees_with_the_rewrite_everywhere() {
        let alphabet = [
            'a', 'A', ' ', '/', '(', ';', ',', '\'', '\t', 'é', 'É', '한',
        ];
        let mut strings = vec![String::new()];
        for _ in 0..4 {
            let longer: Vec<String> = strings
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            strings.extend(longer);
            strings.dedup();
        }
        assert!(strings.len() > 20_000);
        for s in &strings {
            assert_eq!(cmd_line_unchanged(s), cmd_line_rewritten(s) == *s, "{s:?}");
        }
    }

    #[test]
    fn cmd_line_undoes_shell_quoting() {
        assert_eq!(cmd_line("c'a't /e\"t\"c/pa\\sswd"), "cat/etc/passwd");
        assert_eq!(cmd_line("W^hoAmI;  id, -a"), "WhoAmI; id -a");
    }
}
