//! `<bandwidth>`: average, peak and burst of the traffic into
//! (`<inbound>`) and out of (`<outbound>`) a network or a guest interface.

use virxml::{XmlElement, XmlError, XmlWriter};

/// One direction's limits, in libvirt's units: kilobytes per second for
/// `average` and `peak`, kilobytes for `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub average: u64,
    pub peak: Option<u64>,
    pub burst: Option<u64>,
}

/// `<bandwidth>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bandwidth {
    /// Traffic towards the guests (egress of the bridge or tap).
    pub inbound: Option<Rate>,
    /// Traffic from the guests (ingress of the bridge or tap).
    pub outbound: Option<Rate>,
}

impl Bandwidth {
    pub fn parse(el: &XmlElement) -> Result<Self, XmlError> {
        el.check_attrs("bandwidth", &[])?;
        el.check_children("bandwidth", &["inbound", "outbound"])?;
        Ok(Self {
            inbound: el
                .child("inbound")
                .map(|e| parse_rate(e, "inbound"))
                .transpose()?,
            outbound: el
                .child("outbound")
                .map(|e| parse_rate(e, "outbound"))
                .transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.inbound.is_none() && self.outbound.is_none()
    }

    pub(crate) fn format(&self, w: &mut XmlWriter) {
        if self.is_empty() {
            return;
        }
        w.open("bandwidth", &[]);
        for (name, rate) in [("inbound", self.inbound), ("outbound", self.outbound)] {
            if let Some(r) = rate {
                let mut attrs = vec![("average", r.average.to_string())];
                if let Some(p) = r.peak {
                    attrs.push(("peak", p.to_string()));
                }
                if let Some(b) = r.burst {
                    attrs.push(("burst", b.to_string()));
                }
                w.empty(name, &attrs);
            }
        }
        w.close("bandwidth");
    }
}

fn parse_rate(el: &XmlElement, dir: &str) -> Result<Rate, XmlError> {
    let path = format!("bandwidth/{dir}");
    if el.attr("floor").is_some() {
        return Err(XmlError::unsupported_because(
            format!("<{path}> attribute"),
            "floor",
            "guaranteed minimum rates are not implemented",
        ));
    }
    el.check_attrs(&path, &["average", "peak", "burst"])?;
    el.check_children(&path, &[])?;
    let num = |key: &str| -> Result<Option<u64>, XmlError> {
        el.attr(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    XmlError::invalid(
                        format!("<{path} {key}>"),
                        v,
                        "expected a non-negative integer",
                    )
                })
            })
            .transpose()
    };
    let average = num("average")?.filter(|a| *a > 0).ok_or_else(|| {
        XmlError::structure(format!("Missing mandatory average attribute in <{path}>"))
    })?;
    Ok(Rate {
        average,
        peak: num("peak")?,
        burst: num("burst")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_refuse() {
        let el = virxml::parse_document(
            "<bandwidth><inbound average='1000' peak='2000' burst='512'/><outbound average='128'/></bandwidth>",
        )
        .unwrap();
        let b = Bandwidth::parse(&el).unwrap();
        assert_eq!(b.inbound.unwrap().peak, Some(2000));
        assert_eq!(b.outbound.unwrap().average, 128);
        let mut w = XmlWriter::new();
        b.format(&mut w);
        assert!(
            w.finish()
                .contains("<inbound average='1000' peak='2000' burst='512'/>")
        );
        for bad in [
            "<bandwidth><inbound peak='5'/></bandwidth>",
            "<bandwidth><inbound average='x'/></bandwidth>",
            "<bandwidth><inbound average='5' floor='1'/></bandwidth>",
            "<bandwidth><sideways average='5'/></bandwidth>",
        ] {
            assert!(
                Bandwidth::parse(&virxml::parse_document(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
