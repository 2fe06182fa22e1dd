//! HTML form bodies as IMS's token endpoints take them: `application/x-www-form-urlencoded`
//! (Python `requests`, curl, `URLSearchParams`) and `multipart/form-data` (the `form-data`
//! package behind `@adobe/aio-lib-ims` and `@adobe/jwt-auth`, and Node's own `FormData`).
//!
//! Only text fields are meant: a file part's content is taken as its value (as text) like any
//! other. Field order is kept, and a repeated name appears twice; callers decide which wins.

/// Why a body is not a form of its declared type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("the body is not a URL-encoded form")]
    UrlEncoded,
    #[error("multipart/form-data without a boundary parameter")]
    NoBoundary,
    #[error("malformed multipart/form-data body: {0}")]
    Multipart(&'static str),
}

/// The fields of `body`, read as multipart when `content_type` says `multipart/form-data`
/// and as URL-encoded otherwise (including no content type at all, as IMS does).
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    match content_type {
        Some(ct) if media_type(ct).eq_ignore_ascii_case("multipart/form-data") => {
            let boundary = parameter(ct, "boundary").ok_or(FormError::NoBoundary)?;
            multipart(body, &boundary)
        }
        _ => urlencoded(body),
    }
}

/// `a=1&b=2` (with `+` for spaces and percent-escapes) as fields.
pub fn urlencoded(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    serde_urlencoded::from_bytes(body).map_err(|_| FormError::UrlEncoded)
}

/// RFC 7578 `multipart/form-data` with `boundary`: each part needs a
/// `Content-Disposition: form-data; name="..."` header; the body must end with the closing
/// delimiter (`--boundary--`). A preamble before the first delimiter and an epilogue after the
/// last are ignored, as RFC 2046 says.
pub fn multipart(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, FormError> {
    // RFC 2046: 1 to 70 characters.
    if boundary.is_empty() || boundary.len() > 70 {
        return Err(FormError::NoBoundary);
    }
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter starts the body or a line of its own.
    let mut at = if body.starts_with(delimiter) {
        delimiter.len()
    } else {
        let mut line = b"\r\n".to_vec();
        line.extend_from_slice(delimiter);
        find(body, &line, 0).ok_or(FormError::Multipart("no opening boundary"))? + line.len()
    };
    let mut close = b"\r\n".to_vec();
    close.extend_from_slice(delimiter);
    let mut fields = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(fields);
        }
        // Transport padding (RFC 2046 §5.1.1) may follow a delimiter before its CRLF.
        let skip = rest
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        if !rest[skip..].starts_with(b"\r\n") {
            return Err(FormError::Multipart(
                "a boundary is not followed by a line end",
            ));
        }
        let start = at + skip + 2;
        let end = find(body, &close, start).ok_or(FormError::Multipart("no closing boundary"))?;
        fields.push(part(&body[start..end])?);
        at = end + close.len();
    }
}

/// One part: headers, an empty line, the value.
fn part(part: &[u8]) -> Result<(String, String), FormError> {
    let (head, value) = if part.starts_with(b"\r\n") {
        (&part[..0], &part[2..])
    } else {
        let split = find(part, b"\r\n\r\n", 0).ok_or(FormError::Multipart(
            "a part has no empty line after its headers",
        ))?;
        (&part[..split], &part[split + 4..])
    };
    let head = std::str::from_utf8(head).map_err(|_| FormError::Multipart("headers not UTF-8"))?;
    let mut name = None;
    for line in head.split("\r\n") {
        let Some((key, val)) = line.split_once(':') else {
            return Err(FormError::Multipart("a part header without a colon"));
        };
        if key.trim().eq_ignore_ascii_case("content-disposition") {
            if !media_type(val).eq_ignore_ascii_case("form-data") {
                return Err(FormError::Multipart("a part is not form-data"));
            }
            name = parameter(val, "name");
        }
    }
    let name = name.ok_or(FormError::Multipart("a part without a name"))?;
    let value = String::from_utf8(value.to_vec())
        .map_err(|_| FormError::Multipart("a value is not UTF-8"))?;
    Ok((name, value))
}

/// `multipart/form-data` of `multipart/form-data; boundary=x`, trimmed.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// The value of `;name=value` or `;name="quoted \" value"` in a header value.
fn parameter(value: &str, name: &str) -> Option<String> {
    let mut rest = value.split_once(';')?.1;
    loop {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => out.push(chars.next()?.1),
                    (_, c) => out.push(c),
                }
            };
            let next = q[end + 1..].split_once(';').map_or("", |(_, n)| n);
            (out, next)
        } else {
            let (v, n) = after.split_once(';').unwrap_or((after, ""));
            (v.trim().to_string(), n)
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(val);
        }
        if next.is_empty() {
            return None;
        }
        rest = next;
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What the `form-data` package (aio-lib-ims) writes.
    const FORM_DATA: &str = "----------------------------123456789012345678901234\r\n\
        Content-Disposition: form-data; name=\"client_id\"\r\n\r\n\
        abc\r\n\
        ----------------------------123456789012345678901234\r\n\
        Content-Disposition: form-data; name=\"scope\"\r\n\r\n\
        openid,AdobeID\r\n\
        ----------------------------123456789012345678901234--\r\n";

    #[test]
    fn multipart_as_the_form_data_package_writes_it() {
        let ct = "multipart/form-data; boundary=--------------------------123456789012345678901234";
        assert_eq!(
            parse(Some(ct), FORM_DATA.as_bytes()).unwrap(),
            pairs(&[("client_id", "abc"), ("scope", "openid,AdobeID")])
        );
    }

    #[test]
    fn multipart_with_a_quoted_boundary_preamble_part_headers_and_epilogue() {
        let body = "preamble\r\n--b\r\n\
            Content-Disposition: form-data; name=\"a\"; filename=\"x.txt\"\r\n\
            Content-Type: text/plain\r\n\r\n\
            line1\r\nline2\r\n--b  \r\n\
            content-disposition: FORM-DATA; name=b\r\n\r\n\
            \r\n--b--epilogue";
        assert_eq!(
            parse(
                Some("Multipart/Form-Data; charset=utf-8; boundary=\"b\""),
                body.as_bytes()
            )
            .unwrap(),
            pairs(&[("a", "line1\r\nline2"), ("b", "")])
        );
    }

    #[test]
    fn malformed_multipart_is_refused() {
        let ct = Some("multipart/form-data; boundary=b");
        for body in [
            "",
            "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
            "--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--",
            "--b\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nv\r\n--b--",
            "--bx\r\n",
            "a=1&b=2",
        ] {
            assert!(parse(ct, body.as_bytes()).is_err(), "{body:?}");
        }
        assert_eq!(
            parse(Some("multipart/form-data"), b"--b--"),
            Err(FormError::NoBoundary)
        );
    }

    #[test]
    fn urlencoded_whatever_the_content_type_says_otherwise() {
        let body = b"a=1&b=x+y%2Cz&a=2";
        let want = pairs(&[("a", "1"), ("b", "x y,z"), ("a", "2")]);
        assert_eq!(parse(None, body).unwrap(), want);
        assert_eq!(
            parse(Some("application/x-www-form-urlencoded"), body).unwrap(),
            want
        );
        assert_eq!(parse(Some("text/plain"), body).unwrap(), want);
    }

    #[test]
    fn parameters_quoted_or_not() {
        assert_eq!(
            parameter("form-data; name=\"a;b\"; x=1", "x").as_deref(),
            Some("1")
        );
        assert_eq!(
            parameter("form-data; name=\"a\\\"b\"", "name").as_deref(),
            Some("a\"b")
        );
        assert_eq!(parameter("form-data; NAME=c", "name").as_deref(), Some("c"));
        assert_eq!(parameter("form-data", "name"), None);
    }
}
