//! `<graphics>`: the remote display (VNC, SPICE) or none.
//!
//! Without a password a display server is only offered on loopback: it
//! would hand the guest console to anyone who can reach the address. With
//! `passwd` any address is accepted, as libvirt does; the password is set
//! over QMP after QEMU starts (never on its command line, where every
//! local user could read it) and shown only in secure XML.

use std::net::IpAddr;

use crate::error::DomainXmlError;
use crate::values::{check_singletons, named, named_enum, parse_uint, parse_yes_no};
use crate::xml::{XmlElement, XmlWriter};

named_enum! {
    /// `<graphics type>`.
    pub enum GraphicsType {
        Vnc = "vnc",
        Spice = "spice",
        None = "none",
    }
}

named_enum! {
    /// `<graphics connected>`: what happens to connected clients when the
    /// password changes.
    pub enum PasswordConnected {
        Keep = "keep",
        Disconnect = "disconnect",
        Fail = "fail",
    }
}

/// `passwd`, `passwdValidTo` and `connected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphicsPassword {
    pub passwd: String,
    /// `passwdValidTo` as written (`2030-01-01T00:00:00`, UTC).
    pub valid_to: Option<String>,
    /// Seconds since the epoch `valid_to` stands for.
    pub valid_to_epoch: Option<i64>,
    pub connected: Option<PasswordConnected>,
}

/// One display server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayDef {
    /// `None`: autoport (chosen when QEMU starts).
    pub port: Option<u16>,
    pub listen: IpAddr,
    pub password: Option<GraphicsPassword>,
    /// VNC `keymap` (`en-us`, `de`, ...).
    pub keymap: Option<String>,
    /// SPICE `<image compression>`.
    pub image_compression: Option<String>,
    /// SPICE `<gl enable='no'/>` (GL itself is not supported).
    pub gl_disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphicsDef {
    Vnc(DisplayDef),
    Spice(DisplayDef),
    /// `<graphics type='none'/>`: no display backend.
    None,
}

impl GraphicsDef {
    pub fn gtype(&self) -> GraphicsType {
        match self {
            GraphicsDef::Vnc(_) => GraphicsType::Vnc,
            GraphicsDef::Spice(_) => GraphicsType::Spice,
            GraphicsDef::None => GraphicsType::None,
        }
    }

    pub fn display(&self) -> Option<&DisplayDef> {
        match self {
            GraphicsDef::Vnc(d) | GraphicsDef::Spice(d) => Some(d),
            GraphicsDef::None => None,
        }
    }
}

const P: &str = "graphics";

pub(crate) fn parse_graphics(el: &XmlElement) -> Result<GraphicsDef, DomainXmlError> {
    match named(
        "graphics type",
        el.req_attr(P, "type")?,
        GraphicsType::from_name,
    )? {
        GraphicsType::None => {
            el.check_attrs(P, &["type"])?;
            el.check_children(P, &[])?;
            Ok(GraphicsDef::None)
        }
        GraphicsType::Vnc => {
            el.check_attrs(
                P,
                &[
                    "type",
                    "port",
                    "autoport",
                    "listen",
                    "passwd",
                    "passwdValidTo",
                    "connected",
                    "keymap",
                    "websocket",
                ],
            )?;
            el.check_children(P, &["listen"])?;
            if el.attr("websocket").is_some_and(|w| w != "-1") {
                return Err(DomainXmlError::unsupported(
                    "<graphics websocket>",
                    "VNC websocket",
                ));
            }
            Ok(GraphicsDef::Vnc(parse_display(el)?))
        }
        GraphicsType::Spice => {
            el.check_attrs(
                P,
                &[
                    "type",
                    "port",
                    "autoport",
                    "listen",
                    "passwd",
                    "passwdValidTo",
                    "connected",
                    "tlsPort",
                ],
            )?;
            el.check_children(P, &["listen", "image", "gl"])?;
            if el.attr("tlsPort").is_some_and(|p| p != "-1") {
                return Err(DomainXmlError::unsupported_because(
                    "<graphics tlsPort>",
                    el.attr("tlsPort").unwrap_or(""),
                    "SPICE over TLS is not supported",
                ));
            }
            Ok(GraphicsDef::Spice(parse_display(el)?))
        }
    }
}

fn parse_display(el: &XmlElement) -> Result<DisplayDef, DomainXmlError> {
    check_singletons(el, P, &["image", "gl"])?;
    let password = parse_password(el)?;
    let listen = parse_listen(el, password.is_some())?;
    Ok(DisplayDef {
        port: parse_port(el)?,
        listen,
        password,
        keymap: parse_keymap(el)?,
        image_compression: parse_image(el)?,
        gl_disabled: parse_gl(el)?,
    })
}

fn parse_port(el: &XmlElement) -> Result<Option<u16>, DomainXmlError> {
    let port = match el.attr("port") {
        None | Some("-1") | Some("0") => None,
        Some(p) => {
            let n = parse_uint("<graphics port>", p)?;
            if !(5900..=65535).contains(&n) {
                return Err(DomainXmlError::invalid(
                    "<graphics port>",
                    p,
                    "expected 5900..65535 or -1",
                ));
            }
            u16::try_from(n).ok()
        }
    };
    match el.attr("autoport") {
        Some(a) if parse_yes_no("<graphics autoport>", a)? => Ok(None),
        _ => Ok(port),
    }
}

fn parse_listen(el: &XmlElement, has_password: bool) -> Result<IpAddr, DomainXmlError> {
    let mut listen = el
        .attr("listen")
        .map(|l| parse_listen_addr("<graphics listen>", l, has_password))
        .transpose()?;
    for l in el.children_named("listen") {
        l.check_attrs("graphics/listen", &["type", "address"])?;
        l.check_children("graphics/listen", &[])?;
        match l.req_attr("graphics/listen", "type")? {
            "address" => {}
            o => return Err(DomainXmlError::unsupported("graphics listen type", o)),
        }
        if let Some(a) = l.attr("address") {
            let ip = parse_listen_addr("<graphics/listen address>", a, has_password)?;
            if listen.is_some_and(|x| x != ip) {
                return Err(DomainXmlError::structure(
                    "graphics 'listen' attribute does not match the <listen> address",
                ));
            }
            listen = Some(ip);
        }
    }
    Ok(listen.unwrap_or(IpAddr::from([127, 0, 0, 1])))
}

fn parse_listen_addr(what: &str, v: &str, has_password: bool) -> Result<IpAddr, DomainXmlError> {
    let ip: IpAddr = if v == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        v.parse()
            .map_err(|_| DomainXmlError::invalid(what, v, "expected an IP address"))?
    };
    if !ip.is_loopback() && !has_password {
        return Err(DomainXmlError::unsupported_because(
            what,
            v,
            "a display without a password may only listen on a loopback address",
        ));
    }
    Ok(ip)
}

fn parse_password(el: &XmlElement) -> Result<Option<GraphicsPassword>, DomainXmlError> {
    let Some(passwd) = el.attr("passwd") else {
        // A dumpxml without secrets keeps these; without the password they
        // mean nothing, so they are dropped.
        return Ok(None);
    };
    if passwd.len() > 4096 || passwd.contains('\0') {
        return Err(DomainXmlError::invalid(
            "<graphics passwd>",
            "(hidden)",
            "a password is at most 4096 bytes without NUL",
        ));
    }
    let valid_to = el.attr("passwdValidTo").map(str::to_string);
    let valid_to_epoch = valid_to.as_deref().map(parse_timestamp).transpose()?;
    Ok(Some(GraphicsPassword {
        passwd: passwd.to_string(),
        valid_to,
        valid_to_epoch,
        connected: el
            .attr("connected")
            .map(|c| named("<graphics connected>", c, PasswordConnected::from_name))
            .transpose()?,
    }))
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) to seconds since the epoch.
fn parse_timestamp(s: &str) -> Result<i64, DomainXmlError> {
    let bad = || {
        DomainXmlError::invalid(
            "<graphics passwdValidTo>",
            s,
            "expected YYYY-MM-DDTHH:MM:SS (UTC)",
        )
    };
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| -> Result<i64, DomainXmlError> {
        let t = s.get(r).ok_or_else(bad)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<i64>().map_err(|_| bad())
    };
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    Ok(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_keymap(el: &XmlElement) -> Result<Option<String>, DomainXmlError> {
    let Some(k) = el.attr("keymap") else {
        return Ok(None);
    };
    let ok =
        !k.is_empty() && k.len() <= 16 && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !ok {
        return Err(DomainXmlError::invalid(
            "<graphics keymap>",
            k,
            "expected a keymap name such as en-us",
        ));
    }
    Ok(Some(k.to_string()))
}

fn parse_image(el: &XmlElement) -> Result<Option<String>, DomainXmlError> {
    let Some(i) = el.child("image") else {
        return Ok(None);
    };
    i.check_attrs("graphics/image", &["compression"])?;
    i.check_children("graphics/image", &[])?;
    let c = i.req_attr("graphics/image", "compression")?;
    const MODES: &[&str] = &["auto_glz", "auto_lz", "quic", "glz", "lz", "off"];
    if !MODES.contains(&c) {
        return Err(DomainXmlError::unsupported(
            "<graphics/image compression>",
            c,
        ));
    }
    Ok(Some(c.to_string()))
}

fn parse_gl(el: &XmlElement) -> Result<bool, DomainXmlError> {
    let Some(g) = el.child("gl") else {
        return Ok(false);
    };
    g.check_attrs("graphics/gl", &["enable"])?;
    g.check_children("graphics/gl", &[])?;
    if parse_yes_no("<graphics/gl enable>", g.req_attr("graphics/gl", "enable")?)? {
        return Err(DomainXmlError::unsupported_because(
            "<graphics/gl enable>",
            "yes",
            "OpenGL displays are not supported",
        ));
    }
    Ok(true)
}

/// `live_port`: the port QEMU bound for an autoport display; `secure`:
/// whether the password may be shown.
pub(crate) fn format_graphics(
    w: &mut XmlWriter,
    g: &GraphicsDef,
    live_port: Option<u16>,
    secure: bool,
) {
    let (ty, d) = match g {
        GraphicsDef::None => return w.empty("graphics", &[("type", "none".into())]),
        GraphicsDef::Vnc(d) => ("vnc", d),
        GraphicsDef::Spice(d) => ("spice", d),
    };
    let shown = match (d.port, live_port) {
        (Some(p), _) | (None, Some(p)) => p.to_string(),
        (None, None) => "-1".to_string(),
    };
    let mut attrs = vec![
        ("type", ty.to_string()),
        ("port", shown),
        (
            "autoport",
            if d.port.is_none() { "yes" } else { "no" }.into(),
        ),
        ("listen", d.listen.to_string()),
    ];
    if let Some(k) = &d.keymap {
        attrs.push(("keymap", k.clone()));
    }
    format_password(&mut attrs, d.password.as_ref(), secure);
    w.open("graphics", &attrs);
    w.empty(
        "listen",
        &[
            ("type", "address".into()),
            ("address", d.listen.to_string()),
        ],
    );
    if let Some(c) = &d.image_compression {
        w.empty("image", &[("compression", c.clone())]);
    }
    if d.gl_disabled {
        w.empty("gl", &[("enable", "no".into())]);
    }
    w.close("graphics");
}

fn format_password(attrs: &mut Vec<(&str, String)>, p: Option<&GraphicsPassword>, secure: bool) {
    let Some(p) = p else { return };
    if secure {
        attrs.push(("passwd", p.passwd.clone()));
    }
    if let Some(v) = &p.valid_to {
        attrs.push(("passwdValidTo", v.clone()));
    }
    if let Some(c) = p.connected {
        attrs.push(("connected", c.as_str().into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(
            parse_timestamp("2030-01-01T00:00:00").unwrap(),
            1_893_456_000
        );
        assert!(parse_timestamp("2030-13-01T00:00:00").is_err());
        assert!(parse_timestamp("2030-01-01 00:00:00").is_err());
        assert!(parse_timestamp("tomorrow").is_err());
    }

    #[test]
    fn passwords_allow_any_address_and_hide_in_output() {
        let el = virxml::parse_document(
            "<graphics type='vnc' listen='0.0.0.0' passwd='s3cret' passwdValidTo='2030-01-01T00:00:00'/>",
        )
        .unwrap();
        let g = parse_graphics(&el).unwrap();
        let mut w = XmlWriter::new();
        format_graphics(&mut w, &g, None, false);
        let out = w.finish();
        assert!(!out.contains("s3cret"), "{out}");
        assert!(out.contains("passwdValidTo='2030-01-01T00:00:00'"), "{out}");
        let mut w = XmlWriter::new();
        format_graphics(&mut w, &g, None, true);
        assert!(w.finish().contains("passwd='s3cret'"));
        let open = virxml::parse_document("<graphics type='vnc' listen='0.0.0.0'/>").unwrap();
        assert!(parse_graphics(&open).is_err());
    }
}
