//! PDF objects: a tokenizer and parser over the file's bytes (borrowing what it can) and a
//! canonical writer. Writing what was parsed and parsing it again gives the same objects, and
//! writing those the same bytes, which keeps the stripper idempotent.

use super::F;
use crate::strip::StripError;
use std::borrow::Cow;

pub(crate) type Dict<'a> = Vec<(Cow<'a, [u8]>, Obj<'a>)>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Obj<'a> {
    Null,
    Bool(bool),
    /// a number as written in the file (checked: sign, digits, at most one point)
    Num(Cow<'a, [u8]>),
    /// an integer the stripper sets (a stream's /Length)
    Int(i64),
    /// a literal string, unescaped
    Str(Vec<u8>),
    /// a hexadecimal string, decoded
    Hex(Vec<u8>),
    /// a name without its slash, `#xx` decoded
    Name(Cow<'a, [u8]>),
    Array(Vec<Obj<'a>>),
    Dict(Dict<'a>),
    Ref(u32, u16),
}

impl Obj<'_> {
    /// The same object owning all its bytes (for objects parsed out of a decoded object stream,
    /// whose data is dropped once they are read).
    pub(crate) fn into_owned(self) -> Obj<'static> {
        let own = |c: Cow<'_, [u8]>| Cow::Owned(c.into_owned());
        match self {
            Obj::Null => Obj::Null,
            Obj::Bool(b) => Obj::Bool(b),
            Obj::Num(raw) => Obj::Num(own(raw)),
            Obj::Int(i) => Obj::Int(i),
            Obj::Str(s) => Obj::Str(s),
            Obj::Hex(s) => Obj::Hex(s),
            Obj::Name(n) => Obj::Name(own(n)),
            Obj::Array(items) => Obj::Array(items.into_iter().map(Obj::into_owned).collect()),
            Obj::Dict(dict) => Obj::Dict(
                dict.into_iter()
                    .map(|(k, v)| (own(k), v.into_owned()))
                    .collect(),
            ),
            Obj::Ref(n, g) => Obj::Ref(n, g),
        }
    }

    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Obj::Int(i) => Some(*i),
            Obj::Num(raw) => parse_int(raw),
            _ => None,
        }
    }

    pub(crate) fn is_name(&self, name: &[u8]) -> bool {
        matches!(self, Obj::Name(n) if n.as_ref() == name)
    }
}

pub(crate) fn get<'d, 'a>(dict: &'d Dict<'a>, key: &[u8]) -> Option<&'d Obj<'a>> {
    dict.iter().find(|(k, _)| k.as_ref() == key).map(|(_, v)| v)
}

fn parse_int(raw: &[u8]) -> Option<i64> {
    let (neg, digits) = match raw.first()? {
        b'-' => (true, &raw[1..]),
        b'+' => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add((d - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

pub(crate) fn is_ws(b: u8) -> bool {
    matches!(b, 0 | 9 | 10 | 12 | 13 | 32)
}

fn is_delim(b: u8) -> bool {
    matches!(
        b,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn is_regular(b: u8) -> bool {
    !is_ws(b) && !is_delim(b)
}

/// A cursor over the file.
pub(crate) struct Parser<'a> {
    data: &'a [u8],
    pub(crate) pos: usize,
    max_depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(data: &'a [u8], pos: usize, max_depth: usize) -> Self {
        Self {
            data,
            pos,
            max_depth,
        }
    }

    fn err(&self, what: &str) -> StripError {
        if self.pos >= self.data.len() {
            StripError::truncated(F, format!("{what} at the end of the file"))
        } else {
            StripError::malformed(F, format!("{what} at offset {}", self.pos))
        }
    }

    /// Skips white space and comments.
    pub(crate) fn skip_ws(&mut self) {
        while let Some(&b) = self.data.get(self.pos) {
            if is_ws(b) {
                self.pos += 1;
            } else if b == b'%' {
                while let Some(&c) = self.data.get(self.pos) {
                    if c == b'\r' || c == b'\n' {
                        break;
                    }
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// Skips white space, then consumes `kw` when it is a whole keyword there.
    pub(crate) fn eat_keyword(&mut self, kw: &[u8]) -> bool {
        self.skip_ws();
        let rest = &self.data[self.pos.min(self.data.len())..];
        if rest.starts_with(kw) && rest.get(kw.len()).is_none_or(|&b| !is_regular(b)) {
            self.pos += kw.len();
            true
        } else {
            false
        }
    }

    /// Skips white space, then reads an unsigned integer.
    pub(crate) fn uint(&mut self) -> Option<u64> {
        self.skip_ws();
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(&b) = self.data.get(self.pos).filter(|b| b.is_ascii_digit()) {
            v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
            self.pos += 1;
        }
        if self.pos == start || self.data.get(self.pos).is_some_and(|&b| is_regular(b)) {
            self.pos = start;
            return None;
        }
        Some(v)
    }

    /// Reads one object (a reference `n g R` included; streams are the caller's).
    pub(crate) fn object(&mut self, depth: usize) -> Result<Obj<'a>, StripError> {
        self.skip_ws();
        let Some(&b) = self.data.get(self.pos) else {
            return Err(self.err("object expected"));
        };
        match b {
            b'/' => {
                self.pos += 1;
                Ok(Obj::Name(self.name()))
            }
            b'(' => self.literal(),
            b'<' if self.data.get(self.pos + 1) == Some(&b'<') => {
                self.nest(depth)?;
                self.pos += 2;
                let mut dict = Dict::new();
                loop {
                    self.skip_ws();
                    match self.data.get(self.pos) {
                        Some(b'>') if self.data.get(self.pos + 1) == Some(&b'>') => {
                            self.pos += 2;
                            return Ok(Obj::Dict(dict));
                        }
                        Some(b'/') => {
                            self.pos += 1;
                            let key = self.name();
                            let value = self.object(depth + 1)?;
                            dict.push((key, value));
                        }
                        _ => return Err(self.err("dictionary key expected")),
                    }
                }
            }
            b'<' => self.hex(),
            b'[' => {
                self.nest(depth)?;
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.data.get(self.pos) == Some(&b']') {
                        self.pos += 1;
                        return Ok(Obj::Array(items));
                    }
                    items.push(self.object(depth + 1)?);
                }
            }
            b'0'..=b'9' | b'+' | b'-' | b'.' => self.number(),
            _ => {
                let start = self.pos;
                while self.data.get(self.pos).is_some_and(|&b| is_regular(b)) {
                    self.pos += 1;
                }
                match &self.data[start..self.pos] {
                    b"null" => Ok(Obj::Null),
                    b"true" => Ok(Obj::Bool(true)),
                    b"false" => Ok(Obj::Bool(false)),
                    _ => {
                        self.pos = start;
                        Err(self.err("unexpected token"))
                    }
                }
            }
        }
    }

    fn nest(&self, depth: usize) -> Result<(), StripError> {
        if depth >= self.max_depth {
            return Err(StripError::TooLarge {
                format: F,
                what: "nesting of arrays and dictionaries",
                value: depth as u64 + 1,
                limit: self.max_depth as u64,
            });
        }
        Ok(())
    }

    fn number(&mut self) -> Result<Obj<'a>, StripError> {
        let start = self.pos;
        if matches!(self.data[self.pos], b'+' | b'-') {
            self.pos += 1;
        }
        let mut digits = 0;
        let mut point = false;
        while let Some(&b) = self.data.get(self.pos) {
            if b.is_ascii_digit() {
                digits += 1;
            } else if b == b'.' && !point {
                point = true;
            } else {
                break;
            }
            self.pos += 1;
        }
        if digits == 0 || self.data.get(self.pos).is_some_and(|&b| is_regular(b)) {
            self.pos = start;
            return Err(self.err("bad number"));
        }
        let raw = &self.data[start..self.pos];
        // `n g R`: a reference
        if raw.iter().all(u8::is_ascii_digit) {
            let after = self.pos;
            if let Some(generation) = self.uint()
                && self.eat_keyword(b"R")
            {
                let (Some(n), Ok(g)) = (
                    parse_int(raw).and_then(|n| u32::try_from(n).ok()),
                    u16::try_from(generation),
                ) else {
                    return Err(self.err("reference out of range"));
                };
                return Ok(Obj::Ref(n, g));
            }
            self.pos = after;
        }
        Ok(Obj::Num(Cow::Borrowed(raw)))
    }

    /// A name's characters after the slash.
    fn name(&mut self) -> Cow<'a, [u8]> {
        let start = self.pos;
        while self.data.get(self.pos).is_some_and(|&b| is_regular(b)) {
            self.pos += 1;
        }
        let raw = &self.data[start..self.pos];
        if !raw.contains(&b'#') {
            return Cow::Borrowed(raw);
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            match (
                raw[i],
                raw.get(i + 1).and_then(|&h| hex_value(h)),
                raw.get(i + 2).and_then(|&l| hex_value(l)),
            ) {
                (b'#', Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Cow::Owned(out)
    }

    fn literal(&mut self) -> Result<Obj<'a>, StripError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        let mut depth = 1usize;
        loop {
            let Some(&b) = self.data.get(self.pos) else {
                self.pos = start;
                return Err(StripError::truncated(
                    F,
                    format!("string at offset {start} not closed"),
                ));
            };
            self.pos += 1;
            match b {
                b'\\' => {
                    let Some(&e) = self.data.get(self.pos) else {
                        continue;
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0C),
                        b'0'..=b'7' => {
                            let mut v = (e - b'0') as u32;
                            for _ in 0..2 {
                                match self.data.get(self.pos) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + (d - b'0') as u32;
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(v as u8);
                        }
                        // a line continuation
                        b'\r' => {
                            if self.data.get(self.pos) == Some(&b'\n') {
                                self.pos += 1;
                            }
                        }
                        b'\n' => {}
                        // \( \) \\ and unknown escapes: the character itself
                        other => out.push(other),
                    }
                }
                b'(' => {
                    depth += 1;
                    out.push(b);
                }
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(Obj::Str(out));
                    }
                    out.push(b);
                }
                // an end of line in a string reads as \n
                b'\r' => {
                    if self.data.get(self.pos) == Some(&b'\n') {
                        self.pos += 1;
                    }
                    out.push(b'\n');
                }
                _ => out.push(b),
            }
        }
    }

    fn hex(&mut self) -> Result<Obj<'a>, StripError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        loop {
            let Some(&b) = self.data.get(self.pos) else {
                self.pos = start;
                return Err(StripError::truncated(
                    F,
                    format!("hex string at offset {start} not closed"),
                ));
            };
            self.pos += 1;
            if b == b'>' {
                if let Some(h) = high {
                    out.push(h << 4);
                }
                return Ok(Obj::Hex(out));
            }
            if is_ws(b) {
                continue;
            }
            let Some(v) = hex_value(b) else {
                self.pos -= 1;
                return Err(self.err("bad hex string"));
            };
            match high.take() {
                Some(h) => out.push(h << 4 | v),
                None => high = Some(v),
            }
        }
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `obj`; `renumber` maps a reference to its new object number, `None` writing `null`
/// (a reference to an object not written reads as null).
pub(crate) fn write(obj: &Obj, out: &mut Vec<u8>, renumber: &impl Fn(u32, u16) -> Option<u32>) {
    match obj {
        Obj::Null => out.extend_from_slice(b"null"),
        Obj::Bool(true) => out.extend_from_slice(b"true"),
        Obj::Bool(false) => out.extend_from_slice(b"false"),
        Obj::Num(raw) => out.extend_from_slice(raw),
        Obj::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Obj::Str(s) => {
            out.push(b'(');
            for &b in s {
                match b {
                    b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    _ => out.push(b),
                }
            }
            out.push(b')');
        }
        Obj::Hex(s) => {
            out.push(b'<');
            for &b in s {
                out.extend_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
            out.push(b'>');
        }
        Obj::Name(n) => write_name(n, out),
        Obj::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write(item, out, renumber);
            }
            out.push(b']');
        }
        Obj::Dict(dict) => {
            out.extend_from_slice(b"<<");
            for (k, v) in dict {
                out.push(b' ');
                write_name(k, out);
                out.push(b' ');
                write(v, out, renumber);
            }
            out.extend_from_slice(b" >>");
        }
        Obj::Ref(n, g) => match renumber(*n, *g) {
            Some(new) => out.extend_from_slice(format!("{new} 0 R").as_bytes()),
            None => out.extend_from_slice(b"null"),
        },
    }
}

fn write_name(name: &[u8], out: &mut Vec<u8>) {
    out.push(b'/');
    for &b in name {
        if (0x21..=0x7E).contains(&b) && !is_delim(b) && b != b'#' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'#', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Obj<'_>, StripError> {
        Parser::new(s, 0, 10).object(0)
    }

    fn canonical(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write(&parse(s).unwrap(), &mut out, &|n, _| Some(n));
        out
    }

    #[test]
    fn objects() {
        assert_eq!(parse(b"null").unwrap(), Obj::Null);
        assert_eq!(parse(b" % c\n true").unwrap(), Obj::Bool(true));
        assert_eq!(parse(b"-.5").unwrap(), Obj::Num(Cow::Borrowed(b"-.5")));
        assert_eq!(parse(b"12 0 R").unwrap(), Obj::Ref(12, 0));
        assert_eq!(parse(b"12 0 obj").unwrap(), Obj::Num(Cow::Borrowed(b"12")));
        assert_eq!(
            parse(b"(a\\(b\\) (nested) \\101\\0533\\\nc\r\nd)").unwrap(),
            Obj::Str(b"a(b) (nested) A+3c\nd".to_vec())
        );
        assert_eq!(
            parse(b"<48 65 6c6C 6>").unwrap(),
            Obj::Hex(b"Hell`".to_vec())
        );
        assert_eq!(
            parse(b"/A#20B").unwrap(),
            Obj::Name(Cow::Owned(b"A B".to_vec()))
        );
        let d = parse(b"<</Type/Page/Kids[1 0 R 2 0 R]/N -3/Empty<<>>/S()>>").unwrap();
        let Obj::Dict(d) = d else { panic!() };
        assert!(get(&d, b"Type").unwrap().is_name(b"Page"));
        assert_eq!(
            get(&d, b"Kids").unwrap(),
            &Obj::Array(vec![Obj::Ref(1, 0), Obj::Ref(2, 0)])
        );
        assert_eq!(get(&d, b"N").unwrap().as_int(), Some(-3));
    }

    #[test]
    fn bad_objects() {
        for bad in [
            &b"(unclosed"[..],
            b"<4G>",
            b"<<",
            b"<< 1 2 >>",
            b"[1 2",
            b"1.2.3",
            b"--1",
            b"12abc",
            b"foo",
            b"99999999999 0 R",
            b"1 99999 R",
            b"<</A>>",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = [b'['; 20];
        assert!(matches!(parse(&deep), Err(StripError::TooLarge { .. })));
    }

    #[test]
    fn writing_is_canonical_and_stable() {
        let src = b"<</A (x\\)y\r) /B <0aff> /C [1 0 R /D#23 -2.50] /E null /#2F true>>";
        let once = canonical(src);
        assert_eq!(
            once,
            b"<< /A (x\\)y\n) /B <0aff> /C [1 0 R /D#23 -2.50] /E null /#2f true >>".to_vec()
        );
        assert_eq!(canonical(&once), once);
        assert_eq!(canonical(b"(a\\rb\\\\)"), b"(a\\rb\\\\)".to_vec());
        let mut out = Vec::new();
        write(&parse(b"[1 0 R 2 0 R]").unwrap(), &mut out, &|n, _| {
            (n == 2).then_some(7)
        });
        assert_eq!(out, b"[null 7 0 R]");
    }
}
