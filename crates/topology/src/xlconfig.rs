//! Keeping a domain's xl.cfg equal to the host file (real host): only
//! `pci` and `driver_domain` of a driver domain and `vif` of a guest are
//! compared and, when they differ, rewritten by a lossless `xlcfg` edit
//! (every other line, comment and blank of the file stays as it was).
//! `name` must already match the file: drvdom never renames a domain.

use std::path::Path;

use xentypes::IpCidr;
use xlcfg::{Document, PciSpec, PciTarget, Value, VifSpec};

use crate::error::{Error, Result};
use crate::host::DomainRole;
use crate::hostfile::DOM0;
use crate::model::{DriverDomain, Guest, Vif, VifMode};

fn cfg_err(context: String) -> impl FnOnce(xlcfg::Error) -> Error {
    move |e| Error::Config {
        context,
        source: Some(Box::new(e)),
    }
}

/// The config path of a domain (required on a real host).
pub fn config_path<'a>(role: &DomainRole<'a>) -> Result<&'a Path> {
    let (name, p) = match role {
        DomainRole::Driver(d) => (&d.name, d.config.as_deref()),
        DomainRole::Guest(g) => (&g.name, g.config.as_deref()),
    };
    p.ok_or_else(|| Error::Config {
        context: format!("{name} has no `config` in the host file; a real host needs its xl.cfg"),
        source: None,
    })
}

/// The `pci` entries of a driver domain.
pub fn pci_entries(d: &DriverDomain) -> Vec<String> {
    d.nics
        .iter()
        .map(|b| {
            if d.permissive {
                format!("{b},permissive=1")
            } else {
                b.to_string()
            }
        })
        .collect()
}

/// The xl `vif` spec of a file's vif.
pub fn vif_spec(v: &Vif) -> VifSpec {
    let mut s = VifSpec::default();
    s.mac = Some(v.mac);
    if v.backend != DOM0 {
        s.backend = Some(v.backend.clone());
    }
    s.bridge = v.bridge.clone();
    if !v.ip.is_empty() {
        s.ip = Some(IpCidr::format_list(&v.ip));
    }
    s.mtu = v.mtu.and_then(|m| i32::try_from(m).ok());
    if v.mode == VifMode::Route {
        s.script = Some(crate::apply::VIF_ROUTE_SCRIPT.to_string());
    }
    s.trusted = Some(v.trusted);
    s
}

/// Why the `vif` list differs from the guest's vifs, or `None`.
fn vif_drift(g: &Guest, list: Option<&[Value]>) -> Option<String> {
    let have = list.unwrap_or_default();
    if have.len() != g.vifs.len() {
        return Some(format!(
            "vif has {} entries, the host file {}",
            have.len(),
            g.vifs.len()
        ));
    }
    for (i, (h, v)) in have.iter().zip(&g.vifs).enumerate() {
        let Some(text) = h.as_str() else {
            return Some(format!("vif entry {i} is not a string"));
        };
        let Ok(parsed) = VifSpec::parse(text) else {
            return Some(format!("vif entry {i} does not parse"));
        };
        let p = parsed.spec;
        let want = vif_spec(v);
        let ip_of = |s: &Option<String>| {
            let mut l = s
                .as_deref()
                .map(|x| IpCidr::parse_list(x).unwrap_or_default())
                .unwrap_or_default();
            l.sort();
            l
        };
        let differs = p.mac != want.mac
            || p.backend.as_deref().filter(|b| *b != "0" && *b != DOM0) != want.backend.as_deref()
            || p.bridge != want.bridge
            || ip_of(&p.ip) != ip_of(&want.ip)
            || p.mtu.filter(|m| *m != 0) != want.mtu
            || p.trusted.unwrap_or(true) != v.trusted
            || (v.mode == VifMode::Route && p.script != want.script)
            || p.devid
                .is_some_and(|d| i64::from(d) != i64::from(v.devid.0));
        if differs {
            return Some(format!(
                "vif entry {i} is {text:?}, the host file wants {:?}",
                want.to_spec().unwrap_or_default()
            ));
        }
    }
    None
}

fn pci_drift(d: &DriverDomain, list: Option<&[Value]>) -> Option<String> {
    let have = list.unwrap_or_default();
    let mut bdfs = Vec::new();
    for (i, h) in have.iter().enumerate() {
        let parsed = h.as_str().and_then(|t| PciSpec::parse(t).ok());
        let Some(p) = parsed else {
            return Some(format!("pci entry {i} does not parse"));
        };
        let PciTarget::Bdf(a) = p.spec.target else {
            return Some(format!("pci entry {i} names a device by name"));
        };
        let Some(b) = a.function() else {
            return Some(format!("pci entry {i} passes every function (`*`)"));
        };
        if p.spec.permissive.unwrap_or(false) != d.permissive {
            return Some(format!(
                "pci entry {i}: permissive differs from the host file"
            ));
        }
        bdfs.push(b);
    }
    let mut want = d.nics.clone();
    want.sort();
    bdfs.sort();
    if want != bdfs {
        let show = |v: &[xentypes::Bdf]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Some(format!(
            "pci is [{}], the host file [{}]",
            show(&bdfs),
            show(&want)
        ));
    }
    None
}

/// Read and parse a config.
pub fn read(path: &Path) -> Result<Document> {
    let (_, parsed) = Document::read(path).map_err(cfg_err(format!("read {}", path.display())))?;
    Ok(parsed.document)
}

/// Why the config text differs from the file for `role`, or `None`.
pub fn drift(role: &DomainRole<'_>, doc: &Document, path: &Path) -> Result<Option<String>> {
    let settings = doc
        .settings()
        .map_err(cfg_err(format!("interpret {}", path.display())))?;
    let name = settings.string("name").ok().flatten();
    if name != Some(role.name()) {
        return Err(Error::Config {
            context: format!(
                "{} names the domain {}, the host file {:?}: set `name = \"{}\"` in it",
                path.display(),
                name.map_or("nothing".to_string(), |n| format!("{n:?}")),
                role.name(),
                role.name()
            ),
            source: None,
        });
    }
    let why = match role {
        DomainRole::Driver(d) => {
            let dd = settings.long("driver_domain").ok().flatten();
            if dd != Some(1) {
                Some("driver_domain is not 1".to_string())
            } else {
                pci_drift(d, settings.list("pci").ok().flatten())
            }
        }
        DomainRole::Guest(g) => vif_drift(g, settings.list("vif").ok().flatten()),
    };
    Ok(why.map(|w| format!("{}: {w}", path.display())))
}

/// Edit `doc` so that it matches `role` (only `pci`, `driver_domain`,
/// `vif` change).
pub fn edit(role: &DomainRole<'_>, doc: &mut Document) -> Result<()> {
    let strs = |v: Vec<String>| Value::List(v.into_iter().map(Value::Str).collect());
    match role {
        DomainRole::Driver(d) => {
            doc.set("driver_domain", Value::Str("1".into()))
                .map_err(cfg_err("set driver_domain".into()))?;
            if d.nics.is_empty() {
                doc.remove("pci");
            } else {
                doc.set("pci", strs(pci_entries(d)))
                    .map_err(cfg_err("set pci".into()))?;
            }
        }
        DomainRole::Guest(g) => {
            if g.vifs.is_empty() {
                doc.remove("vif");
            } else {
                let mut v = Vec::new();
                for x in &g.vifs {
                    v.push(
                        vif_spec(x)
                            .to_spec()
                            .map_err(cfg_err(format!("write vif {} of {}", x.devid, g.name)))?,
                    );
                }
                doc.set("vif", strs(v)).map_err(cfg_err("set vif".into()))?;
            }
        }
    }
    Ok(())
}

/// Rewrite the file atomically (temporary file, fsync, rename), keeping
/// its permissions.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |e: std::io::Error| Error::Config {
            context: what,
            source: Some(Box::new(e)),
        }
    };
    let tmp = path.with_extension("drvdom-tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io("create a temporary file next to"))?;
    if let Ok(m) = std::fs::metadata(path) {
        let _ = f.set_permissions(m.permissions());
    }
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io("write"))?;
    std::fs::rename(&tmp, path).map_err(io("replace"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LoadOptions, parse_str};

    const HOST: &str = r#"
version = 1
[[driver_domain]]
name = "netdd"
nics = ["03:00.0"]
[[driver_domain.bridge]]
name = "xenbr0"
[[guest]]
name = "web"
[[guest.vif]]
backend = "netdd"
ip = ["192.0.2.10/24"]
mtu = 9000
"#;

    fn topo() -> crate::Topology {
        parse_str(HOST, "h", None, &LoadOptions::default())
            .unwrap()
            .topology
    }

    fn doc(s: &str) -> Document {
        Document::parse_str(s, "x.cfg").unwrap().document
    }

    #[test]
    fn driver_domain_edit_is_lossless_and_converges() {
        let t = topo();
        let role = DomainRole::Driver(&t.driver_domains[0]);
        let src =
            "# the driver domain\nname = \"netdd\"\nmemory = 512 # MiB\npci = [ '04:00.0' ]\n";
        let mut d = doc(src);
        let why = drift(&role, &d, Path::new("dd.cfg")).unwrap().unwrap();
        assert!(why.contains("driver_domain is not 1"), "{why}");
        edit(&role, &mut d).unwrap();
        let out = String::from_utf8(d.to_bytes()).unwrap();
        assert!(
            out.starts_with("# the driver domain\nname = \"netdd\"\nmemory = 512 # MiB\n"),
            "{out}"
        );
        assert!(out.contains("0000:03:00.0"), "{out}");
        assert!(
            out.contains("driver_domain = 1") || out.contains("driver_domain = \"1\""),
            "{out}"
        );
        let again = doc(&out);
        assert_eq!(
            drift(&role, &again, Path::new("dd.cfg")).unwrap(),
            None,
            "{out}"
        );
    }

    #[test]
    fn guest_vif_list_follows_the_file() {
        let t = topo();
        let role = DomainRole::Guest(&t.guests[0]);
        let mut d = doc("name = 'web'\nkernel = '/boot/vmlinuz'\nvif = ['bridge=xenbr0']\n");
        assert!(drift(&role, &d, Path::new("w.cfg")).unwrap().is_some());
        edit(&role, &mut d).unwrap();
        let out = String::from_utf8(d.to_bytes()).unwrap();
        assert!(out.contains("kernel = '/boot/vmlinuz'"), "{out}");
        let mac = t.guests[0].vifs[0].mac;
        assert!(
            out.contains(&format!(
                "mac={mac},bridge=xenbr0,backend=netdd,ip=192.0.2.10/24"
            )),
            "{out}"
        );
        assert!(
            out.contains("mtu=9000") && out.contains("untrusted"),
            "{out}"
        );
        assert_eq!(drift(&role, &doc(&out), Path::new("w.cfg")).unwrap(), None);
        // An equivalent spelling is no drift.
        let same = format!(
            "name = 'web'\nvif = [ 'backend=netdd, mac={mac}, bridge=xenbr0, ip=192.0.2.10/24, mtu=9000, untrusted' ]\n"
        );
        assert_eq!(drift(&role, &doc(&same), Path::new("w.cfg")).unwrap(), None);
    }

    #[test]
    fn a_different_name_is_an_error() {
        let t = topo();
        let role = DomainRole::Guest(&t.guests[0]);
        let e = drift(&role, &doc("name = 'other'\n"), Path::new("w.cfg")).unwrap_err();
        assert!(e.to_string().contains("names the domain \"other\""), "{e}");
    }
}
