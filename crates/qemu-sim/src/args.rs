//! Command-line parsing.
//!
//! The simulator must accept the very command line a manager builds for
//! `qemu-system-x86_64`, so unknown options are consumed with their argument
//! and ignored rather than rejected. Options that take no argument must be
//! listed in [`FLAGS`]: without that list we could not tell whether the next
//! word belongs to the option.

use std::fmt;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::faults::FloodSpec;

/// A command-line error; printed as `qemu-sim: <msg>` and exit status 1, as
/// QEMU does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ArgError> {
    Err(ArgError(msg.into()))
}

/// Where a QMP monitor listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MonitorSpec {
    /// A UNIX socket path the simulator binds (after unlinking a stale file).
    Path(PathBuf),
    /// A listening socket inherited from the manager (libvirt passes these so
    /// the socket exists before QEMU starts).
    Fd(RawFd),
}

/// Fault-injection and timing options (`-sim-*`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimOptions {
    pub control: Option<PathBuf>,
    pub flood: Option<FloodSpec>,
    pub hang: bool,
    pub slow_ms: u64,
    pub garbage: bool,
    pub wrong_ids: bool,
    /// The guest never releases a device `device_del` asks to unplug.
    pub ignore_unplug: bool,
    pub huge_mib: Option<u64>,
    pub exit_after_ms: Option<u64>,
    pub job_ms: u64,
    pub powerdown_ms: u64,
    /// `-sim-hostile`: attempts a taken-over QEMU would make.
    pub hostile: Option<crate::hostile::HostileSpec>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            control: None,
            flood: None,
            hang: false,
            slow_ms: 0,
            garbage: false,
            wrong_ids: false,
            ignore_unplug: false,
            huge_mib: None,
            exit_after_ms: None,
            job_ms: 2000,
            powerdown_ms: 100,
            hostile: None,
        }
    }
}

/// Everything the simulator takes from its command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub mem_mib: u64,
    pub smp: u32,
    /// `-smp maxcpus=`: CPU slots, the boot CPUs' and the free ones.
    pub max_cpus: u32,
    pub kvm: bool,
    pub start_paused: bool,
    pub no_shutdown: bool,
    pub no_reboot: bool,
    pub daemonize: bool,
    pub pidfile: Option<PathBuf>,
    pub monitors: Vec<MonitorSpec>,
    pub incoming: Option<String>,
    /// Node names from `-blockdev`, so block jobs can name them.
    pub nodes: Vec<String>,
    /// Drive ids from `-drive id=`, accepted as block job devices.
    pub drives: Vec<String>,
    /// Device ids from `-device ...,id=`, so `device_del` can find them.
    pub devices: Vec<String>,
    /// `-sandbox on,...,spawn=deny` (QEMU's filter of new processes).
    pub sandbox_spawn_deny: bool,
    pub sim: SimOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            uuid: None,
            mem_mib: 128,
            smp: 1,
            max_cpus: 1,
            kvm: false,
            start_paused: false,
            no_shutdown: false,
            no_reboot: false,
            daemonize: false,
            pidfile: None,
            monitors: Vec::new(),
            incoming: None,
            nodes: Vec::new(),
            drives: Vec::new(),
            devices: Vec::new(),
            sandbox_spawn_deny: false,
            sim: SimOptions::default(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub(crate) enum Action {
    Run(Box<Config>),
    /// `-version`: print and exit 0 (managers probe the binary this way).
    Version,
    /// `-help` / `-h`.
    Help,
}

/// Options that take no argument. Everything else starting with `-`
/// consumes the next word.
pub(crate) const FLAGS: &[&str] = &[
    "S",
    "no-shutdown",
    "no-reboot",
    "nodefaults",
    "no-user-config",
    "nographic",
    "daemonize",
    "enable-kvm",
    "no-hpet",
    "no-acpi",
    "snapshot",
    "s",
    "full-screen",
    "no-fd-bootchk",
    "no-quit",
    "preconfig",
    "only-migratable",
    "mem-prealloc",
    "enable-fips",
    "win2k-hack",
    "usb",
    "no-frame",
    "alt-grab",
    "ctrl-grab",
    "old-param",
    "semihosting",
    "version",
    "help",
    "h",
    "sim-hang",
    "sim-ignore-unplug",
    "sim-garbage",
    "sim-wrong-ids",
];

/// Parses QEMU's `key=value,key2=value2` option syntax. `,,` is a literal
/// comma. A first element without `=` gets the `implied` key when given (as
/// `-name NAME` or `-m 512`); any other bare word is a boolean flag, with a
/// `no` prefix meaning off (`nowait`).
pub(crate) fn parse_opts(s: &str, implied: Option<&str>) -> Vec<(String, String)> {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                parts.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.into_iter().enumerate() {
        if let Some((k, v)) = p.split_once('=') {
            out.push((k.to_string(), v.to_string()));
        } else if i == 0 && implied.is_some() {
            out.push((implied.unwrap_or_default().to_string(), p));
        } else if p.is_empty() {
            continue;
        } else if let Some(rest) = p.strip_prefix("no").filter(|r| !r.is_empty()) {
            out.push((rest.to_string(), "off".to_string()));
        } else {
            out.push((p, "on".to_string()));
        }
    }
    out
}

fn get<'a>(opts: &'a [(String, String)], key: &str) -> Option<&'a str> {
    opts.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn parse_bool(opt: &str, key: &str, v: &str) -> Result<bool, ArgError> {
    match v {
        "on" | "yes" | "true" | "y" => Ok(true),
        "off" | "no" | "false" | "n" => Ok(false),
        _ => err(format!("-{opt}: Parameter '{key}' expects 'on' or 'off'")),
    }
}

fn parse_u64(opt: &str, v: &str) -> Result<u64, ArgError> {
    v.parse::<u64>()
        .map_err(|_| ArgError(format!("-{opt} {v}: expects a non-negative number")))
}

/// `-m` sizes: a bare number is MiB; suffixes K/M/G/T.
fn parse_mem(v: &str) -> Result<u64, ArgError> {
    let opts = parse_opts(v, Some("size"));
    let size = get(&opts, "size").unwrap_or("128");
    let bad = || ArgError(format!("-m {v}: Parameter 'size' expects a size"));
    let (num, mult): (&str, f64) = match size.char_indices().last() {
        Some((i, 'k' | 'K')) => (&size[..i], 1.0 / 1024.0),
        Some((i, 'm' | 'M')) => (&size[..i], 1.0),
        Some((i, 'g' | 'G')) => (&size[..i], 1024.0),
        Some((i, 't' | 'T')) => (&size[..i], 1024.0 * 1024.0),
        Some(_) => (size, 1.0),
        None => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    let mib = (n * mult).ceil();
    if mib > (1u64 << 40) as f64 {
        return Err(bad());
    }
    Ok(mib as u64)
}

fn parse_smp(v: &str) -> Result<u32, ArgError> {
    let opts = parse_opts(v, Some("cpus"));
    let num = |k: &str| -> Result<Option<u32>, ArgError> {
        match get(&opts, k) {
            None => Ok(None),
            Some(s) => s
                .parse::<u32>()
                .map(Some)
                .map_err(|_| ArgError(format!("-smp {v}: Parameter '{k}' expects a number"))),
        }
    };
    if let Some(c) = num("cpus")? {
        if c == 0 {
            return err(format!("-smp {v}: Invalid CPU topology"));
        }
        return Ok(c);
    }
    let mut total: u32 = 1;
    for k in ["sockets", "dies", "clusters", "cores", "threads"] {
        if let Some(n) = num(k)? {
            total = total.saturating_mul(n.max(1));
        }
    }
    Ok(total)
}

fn valid_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn parse_ms(opt: &str, v: &str) -> Result<u64, ArgError> {
    parse_u64(opt, v)
}

/// A `-chardev` socket server we may serve a monitor on.
#[derive(Debug)]
struct Chardev {
    id: String,
    spec: Option<MonitorSpec>,
    why_not: Option<String>,
}

fn parse_chardev(v: &str) -> Result<Chardev, ArgError> {
    let opts = parse_opts(v, Some("backend"));
    let Some(id) = get(&opts, "id").filter(|s| !s.is_empty()) else {
        return err(format!("-chardev {v}: Parameter 'id' is missing"));
    };
    let id = id.to_string();
    if get(&opts, "backend") != Some("socket") {
        return Ok(Chardev {
            id,
            spec: None,
            why_not: Some("is not a socket".into()),
        });
    }
    let server = match get(&opts, "server") {
        Some(s) => parse_bool("chardev", "server", s)?,
        None => false,
    };
    if let Some(w) = get(&opts, "wait") {
        parse_bool("chardev", "wait", w)?;
    }
    if !server {
        return Ok(Chardev {
            id,
            spec: None,
            why_not: Some("is not a server socket (server=on)".into()),
        });
    }
    let spec = match (get(&opts, "path"), get(&opts, "fd")) {
        (Some(p), None) if !p.is_empty() => MonitorSpec::Path(PathBuf::from(p)),
        (None, Some(fd)) => {
            let n: RawFd = fd
                .parse()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| ArgError(format!("-chardev {v}: fd '{fd}' is not a number")))?;
            MonitorSpec::Fd(n)
        }
        (Some(_), Some(_)) => {
            return err(format!(
                "-chardev {v}: 'path' and 'fd' are mutually exclusive"
            ));
        }
        _ => {
            return Ok(Chardev {
                id,
                spec: None,
                why_not: Some("is not a UNIX socket (path= or fd=)".into()),
            });
        }
    };
    Ok(Chardev {
        id,
        spec: Some(spec),
        why_not: None,
    })
}

fn parse_qmp(v: &str) -> Result<MonitorSpec, ArgError> {
    let Some(rest) = v.strip_prefix("unix:") else {
        return err(format!(
            "-qmp {v}: only unix:PATH monitors are supported by qemu-sim"
        ));
    };
    let opts = parse_opts(rest, Some("path"));
    let path = get(&opts, "path").unwrap_or_default();
    if path.is_empty() {
        return err(format!("-qmp {v}: missing socket path"));
    }
    if let Some(s) = get(&opts, "server")
        && !parse_bool("qmp", "server", s)?
    {
        return err(format!("-qmp {v}: qemu-sim can only listen (server=on)"));
    }
    if let Some(w) = get(&opts, "wait") {
        parse_bool("qmp", "wait", w)?;
    }
    Ok(MonitorSpec::Path(PathBuf::from(path)))
}

/// Pulls the node-name out of a `-blockdev` argument (JSON or key=value).
fn blockdev_node_name(v: &str) -> Option<String> {
    if v.trim_start().starts_with('{') {
        let val: serde_json::Value = serde_json::from_str(v).ok()?;
        return val
            .get("node-name")
            .and_then(|n| n.as_str())
            .map(str::to_string);
    }
    get(&parse_opts(v, None), "node-name").map(str::to_string)
}

fn device_id(v: &str) -> Option<String> {
    if v.trim_start().starts_with('{') {
        let val: serde_json::Value = serde_json::from_str(v).ok()?;
        return val.get("id").and_then(|n| n.as_str()).map(str::to_string);
    }
    get(&parse_opts(v, Some("driver")), "id").map(str::to_string)
}

/// Parses the arguments after the program name.
pub(crate) fn parse<I, S>(args: I) -> Result<Action, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut cfg = Config::default();
    let mut chardevs: Vec<Chardev> = Vec::new();
    let mut mons: Vec<(String, String)> = Vec::new(); // (chardev id, mode)
    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        let Some(opt) = arg.strip_prefix('-') else {
            // A bare word is a disk image for QEMU; nothing to simulate.
            continue;
        };
        let opt = opt.strip_prefix('-').unwrap_or(opt);
        if opt.is_empty() {
            return err(format!("{arg}: invalid option"));
        }
        if FLAGS.contains(&opt) {
            match opt {
                "S" => cfg.start_paused = true,
                "no-shutdown" => cfg.no_shutdown = true,
                "no-reboot" => cfg.no_reboot = true,
                "daemonize" => cfg.daemonize = true,
                "enable-kvm" => cfg.kvm = true,
                "version" => return Ok(Action::Version),
                "help" | "h" => return Ok(Action::Help),
                "sim-hang" => cfg.sim.hang = true,
                "sim-garbage" => cfg.sim.garbage = true,
                "sim-wrong-ids" => cfg.sim.wrong_ids = true,
                "sim-ignore-unplug" => cfg.sim.ignore_unplug = true,
                _ => {}
            }
            continue;
        }
        let Some(v) = it.next() else {
            return err(format!("-{opt}: requires an argument"));
        };
        match opt {
            "name" => {
                let opts = parse_opts(&v, Some("guest"));
                cfg.name = get(&opts, "guest").map(str::to_string);
            }
            "uuid" => {
                if !valid_uuid(&v) {
                    return err(format!(
                        "-uuid {v}: Fail to parse UUID string. Wrong format."
                    ));
                }
                cfg.uuid = Some(v.to_ascii_lowercase());
            }
            "m" => cfg.mem_mib = parse_mem(&v)?,
            "smp" => {
                cfg.smp = parse_smp(&v)?;
                let max = parse_opts(&v, Some("cpus"));
                cfg.max_cpus = get(&max, "maxcpus")
                    .and_then(|m| m.parse::<u32>().ok())
                    .unwrap_or(cfg.smp)
                    .max(cfg.smp);
            }
            "machine" | "M" => {
                let opts = parse_opts(&v, Some("type"));
                if let Some(a) = get(&opts, "accel") {
                    cfg.kvm = a.split(':').next() == Some("kvm");
                }
            }
            "accel" => {
                let opts = parse_opts(&v, Some("accel"));
                cfg.kvm = get(&opts, "accel") == Some("kvm");
            }
            "pidfile" => cfg.pidfile = Some(PathBuf::from(v)),
            "chardev" => chardevs.push(parse_chardev(&v)?),
            "mon" => {
                let opts = parse_opts(&v, Some("chardev"));
                let Some(id) = get(&opts, "chardev") else {
                    return err(format!("-mon {v}: Parameter 'chardev' is missing"));
                };
                let mode = get(&opts, "mode").unwrap_or("readline").to_string();
                if mode != "control" && mode != "readline" {
                    return err(format!("-mon {v}: unknown monitor mode '{mode}'"));
                }
                mons.push((id.to_string(), mode));
            }
            "qmp" => cfg.monitors.push(parse_qmp(&v)?),
            "incoming" => {
                if v.is_empty() {
                    return err("-incoming: URI is empty");
                }
                cfg.incoming = Some(v);
            }
            "blockdev" => {
                if let Some(n) = blockdev_node_name(&v) {
                    cfg.nodes.push(n);
                }
            }
            "drive" => {
                if let Some(id) = get(&parse_opts(&v, None), "id") {
                    cfg.drives.push(id.to_string());
                }
            }
            "device" => {
                if let Some(id) = device_id(&v) {
                    cfg.devices.push(id);
                }
            }
            "sandbox" => {
                let opts = parse_opts(&v, Some("enable"));
                cfg.sandbox_spawn_deny =
                    get(&opts, "enable") == Some("on") && get(&opts, "spawn") == Some("deny");
            }
            "sim-hostile" => {
                cfg.sim.hostile = Some(
                    crate::hostile::HostileSpec::parse(&v)
                        .map_err(|e| ArgError(format!("-sim-hostile {v}: {e}")))?,
                )
            }
            "sim-control" => cfg.sim.control = Some(PathBuf::from(v)),
            "sim-flood" => {
                cfg.sim.flood = Some(
                    FloodSpec::parse_colon(&v)
                        .map_err(|e| ArgError(format!("-sim-flood {v}: {e}")))?,
                )
            }
            "sim-slow" => cfg.sim.slow_ms = parse_ms(opt, &v)?,
            "sim-huge-mib" => cfg.sim.huge_mib = Some(parse_u64(opt, &v)?),
            "sim-exit-after" => cfg.sim.exit_after_ms = Some(parse_ms(opt, &v)?),
            "sim-job-ms" => cfg.sim.job_ms = parse_ms(opt, &v)?,
            "sim-powerdown-ms" => cfg.sim.powerdown_ms = parse_ms(opt, &v)?,
            // Everything else (-cpu, -display, -device, -netdev, -object, ...)
            // changes nothing the simulator models.
            _ => {}
        }
    }
    for (id, mode) in mons {
        let Some(cd) = chardevs.iter().find(|c| c.id == id) else {
            return err(format!("-mon chardev={id}: chardev \"{id}\" not found"));
        };
        if mode != "control" {
            continue; // human monitor: not modelled
        }
        match (&cd.spec, &cd.why_not) {
            (Some(spec), _) => cfg.monitors.push(spec.clone()),
            (None, why) => {
                return err(format!(
                    "-mon chardev={id}: qemu-sim serves QMP only on listening UNIX sockets; chardev '{id}' {}",
                    why.as_deref().unwrap_or("is unusable")
                ));
            }
        }
    }
    Ok(Action::Run(Box::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, ArgError> {
        match parse(args.iter().copied())? {
            Action::Run(c) => Ok(*c),
            other => Err(ArgError(format!("unexpected {other:?}"))),
        }
    }

    #[test]
    fn opts_escape_and_flags() {
        let o = parse_opts("socket,id=a,,b,server,nowait", Some("backend"));
        assert_eq!(
            o,
            vec![
                ("backend".into(), "socket".into()),
                ("id".into(), "a,b".into()),
                ("server".into(), "on".into()),
                ("wait".into(), "off".into()),
            ]
        );
    }

    #[test]
    fn libvirt_style_command_line() {
        let c = run(&[
            "-name",
            "guest=vm1,debug-threads=on",
            "-S",
            "-uuid",
            "6B29FC40-CA47-1067-B31D-00DD010662DA",
            "-machine",
            "pc-q35-7.2,usb=off,accel=kvm",
            "-m",
            "size=1048576k",
            "-smp",
            "2,sockets=2,cores=1,threads=1",
            "-chardev",
            "socket,id=charmonitor,fd=3,server=on,wait=off",
            "-mon",
            "chardev=charmonitor,id=monitor,mode=control",
            "-no-shutdown",
            "-blockdev",
            r#"{"driver":"file","filename":"/x.img","node-name":"libvirt-1-storage"}"#,
            "-device",
            "virtio-blk-pci,bus=pci.0,drive=libvirt-1-format,id=virtio-disk0",
            "-msg",
            "timestamp=on",
        ])
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("vm1"));
        assert_eq!(
            c.uuid.as_deref(),
            Some("6b29fc40-ca47-1067-b31d-00dd010662da")
        );
        assert!(c.kvm && c.start_paused && c.no_shutdown);
        assert_eq!(c.mem_mib, 1024);
        assert_eq!(c.smp, 2);
        assert_eq!(c.monitors, vec![MonitorSpec::Fd(3)]);
        assert_eq!(c.nodes, vec!["libvirt-1-storage".to_string()]);
        assert_eq!(c.devices, vec!["virtio-disk0".to_string()]);
    }

    #[test]
    fn qmp_and_plain_name() {
        let c = run(&[
            "-name",
            "plain",
            "-qmp",
            "unix:/tmp/x.sock,server,nowait",
            "-m",
            "2G",
        ])
        .unwrap();
        assert_eq!(c.name.as_deref(), Some("plain"));
        assert_eq!(c.monitors, vec![MonitorSpec::Path("/tmp/x.sock".into())]);
        assert_eq!(c.mem_mib, 2048);
    }

    #[test]
    fn errors() {
        assert!(run(&["-m"]).is_err());
        assert!(run(&["-m", "lots"]).is_err());
        assert!(run(&["-uuid", "nope"]).is_err());
        assert!(run(&["-mon", "chardev=x,mode=control"]).is_err());
        assert!(run(&["-chardev", "pty,id=x", "-mon", "chardev=x,mode=control"]).is_err());
        assert!(run(&["-qmp", "tcp:localhost:4444"]).is_err());
        assert!(run(&["-sim-flood", "X:fast"]).is_err());
        assert!(run(&["-sim-slow", "-1"]).is_err());
    }

    #[test]
    fn unknown_options_consume_argument() {
        let c = run(&["-whatever", "-S", "-nodefaults"]).unwrap();
        // "-S" was the argument of -whatever.
        assert!(!c.start_paused);
    }
}
