//! `<bandwidth>` on a device with `tc`: HTB shaping of what the device
//! sends (inbound, towards the guests) and policing of what it receives
//! (outbound, from the guests).
//!
//! Leaf queues are `pfifo` (kernels built without sfq or fq_codel have
//! it). Policing needs the kernel's `police` action; where it is missing,
//! received traffic is redirected to an `ifb` device and shaped there with
//! the same HTB class, which limits the rate the same way (queueing
//! instead of dropping).

use std::path::PathBuf;
use std::time::Duration;

use crate::host::{cmd, link};
use crate::xml::{Bandwidth, Rate};
use crate::{Error, Result};

/// How to run tc.
#[derive(Debug, Clone)]
pub(crate) struct Tc {
    pub binary: PathBuf,
    pub deadline: Duration,
}

/// The ifb device that carries the received traffic of `ifindex` when
/// policing is unavailable. Named by index: interface names are too long
/// to derive a second one from.
pub(crate) fn ifb_name(ifindex: u32) -> String {
    format!("fvifb{ifindex}")
}

fn htb(dev: &str, r: &Rate) -> Vec<Vec<String>> {
    let ceil = r.peak.unwrap_or(r.average).max(r.average);
    let mut class = format!(
        "class add dev {dev} parent 1: classid 1:1 htb rate {}kbps ceil {ceil}kbps",
        r.average
    );
    if let Some(b) = r.burst {
        class += &format!(" burst {b}kb");
    }
    [
        format!("qdisc add dev {dev} root handle 1: htb default 1"),
        class,
        format!("qdisc add dev {dev} parent 1:1 handle 2: pfifo"),
    ]
    .into_iter()
    .map(|l| l.split(' ').map(str::to_owned).collect())
    .collect()
}

impl Tc {
    async fn tc(&self, args: &[String]) -> Result<()> {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cmd::run_ok(&self.binary, &refs, None, self.deadline)
            .await
            .map(drop)
    }

    async fn tc_words(&self, line: &str) -> Result<()> {
        let args: Vec<String> = line.split(' ').map(str::to_owned).collect();
        self.tc(&args).await
    }

    /// Removes every limit from `dev` (and its ifb, if any).
    pub(crate) async fn clear(&self, dev: &str, ifindex: u32) -> Result<()> {
        for what in ["root", "ingress"] {
            // "No such file" when there is nothing to delete: fine.
            let _ = cmd::run(
                &self.binary,
                &["qdisc", "del", "dev", dev, what],
                None,
                self.deadline,
            )
            .await?;
        }
        let h = link::connect()?;
        link::delete(&h, &ifb_name(ifindex)).await
    }

    /// Replaces the limits of `dev` with `bw`.
    pub(crate) async fn apply(&self, dev: &str, ifindex: u32, bw: &Bandwidth) -> Result<()> {
        self.clear(dev, ifindex).await?;
        let res = self.apply_fresh(dev, ifindex, bw).await;
        if res.is_err() {
            let _ = self.clear(dev, ifindex).await;
        }
        res
    }

    async fn apply_fresh(&self, dev: &str, ifindex: u32, bw: &Bandwidth) -> Result<()> {
        if let Some(r) = &bw.inbound {
            for args in htb(dev, r) {
                self.tc(&args).await?;
            }
        }
        let Some(r) = &bw.outbound else { return Ok(()) };
        self.tc_words(&format!("qdisc add dev {dev} ingress"))
            .await?;
        let burst = r.burst.unwrap_or(r.average);
        let police = format!(
            "filter add dev {dev} parent ffff: protocol all u32 match u32 0 0 police rate {}kbps burst {burst}kb mtu 64kb drop flowid :1",
            r.average
        );
        match self.tc_words(&police).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::debug!(error = %e, "tc police unavailable; shaping received traffic on an ifb device");
                self.redirect_to_ifb(dev, ifindex, r).await
            }
        }
    }

    async fn redirect_to_ifb(&self, dev: &str, ifindex: u32, r: &Rate) -> Result<()> {
        let ifb = ifb_name(ifindex);
        let h = link::connect()?;
        h.link()
            .add(rtnetlink::LinkIfb::new(&ifb).up().build())
            .execute()
            .await
            .map_err(|e| crate::error::netlink(format!("cannot create {ifb}"), e))?;
        for args in htb(&ifb, r) {
            self.tc(&args).await?;
        }
        self.tc_words(&format!(
            "filter add dev {dev} parent ffff: protocol all u32 match u32 0 0 action mirred egress redirect dev {ifb}"
        ))
        .await
        .map_err(|e| Error::Unsupported(format!("outbound bandwidth limits need the kernel's police or mirred action: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htb_lines() {
        let r = Rate {
            average: 1000,
            peak: Some(2000),
            burst: Some(64),
        };
        let lines: Vec<String> = htb("vnet0", &r).iter().map(|a| a.join(" ")).collect();
        assert_eq!(lines[0], "qdisc add dev vnet0 root handle 1: htb default 1");
        assert_eq!(
            lines[1],
            "class add dev vnet0 parent 1: classid 1:1 htb rate 1000kbps ceil 2000kbps burst 64kb"
        );
        assert_eq!(lines[2], "qdisc add dev vnet0 parent 1:1 handle 2: pfifo");
        assert_eq!(ifb_name(12), "fvifb12");
    }
}
