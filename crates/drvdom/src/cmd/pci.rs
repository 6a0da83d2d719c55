//! `drvdom pci`: find PCI devices, hand them to xen-pciback, take them back,
//! and print the boot parameters that hide them from dom0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use pci::bootparams::{self, PcibackKind};
use pci::{
    AssignOptions, Bdf, DriverRecord, InfoSources, NetSnapshot, PciDevice, Pciback, StateFile,
    Sysfs,
};

use super::output::{self, Code, cli_error, schema};
use super::usage_error;

/// Where sysfs is.
#[derive(clap::Args, Debug, Clone)]
pub struct SysfsOpts {
    /// Root of the sysfs tree (a fixture directory in tests).
    #[arg(
        long,
        env = "DRVDOM_SYSFS_ROOT",
        default_value = "/sys",
        value_name = "DIR"
    )]
    pub sysfs_root: PathBuf,
}

impl SysfsOpts {
    fn sysfs(&self) -> Sysfs {
        Sysfs::new(&self.sysfs_root)
    }

    /// `xl info` output, asked only when looking at the real host.
    pub fn xl_info(&self) -> Option<String> {
        (self.sysfs_root == Path::new("/sys"))
            .then(pci::checks::xl_info)
            .flatten()
    }
}

/// Where kernel modules of the running kernel are.
#[derive(clap::Args, Debug, Clone)]
pub struct ModulesOpts {
    /// Kernel modules directory (default: /lib/modules/$(uname -r)).
    #[arg(long, env = "DRVDOM_MODULES_DIR", value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,
}

impl ModulesOpts {
    /// The directory given, else the running kernel's.
    pub fn dir(&self) -> Option<PathBuf> {
        self.modules_dir.clone().or_else(pci::running_modules_dir)
    }
}

/// Where procfs is (dom0's routes: which NIC is the management NIC).
#[derive(clap::Args, Debug, Clone)]
pub struct ProcOpts {
    /// Root of the procfs tree (a fixture directory in tests).
    #[arg(
        long,
        env = "DRVDOM_PROC_ROOT",
        default_value = "/proc",
        value_name = "DIR",
        hide = true
    )]
    pub proc_root: PathBuf,
}

impl ProcOpts {
    /// Interfaces, addresses and default routes, now.
    pub fn net(&self) -> NetSnapshot {
        NetSnapshot::capture(&self.proc_root)
    }
}

/// Where the original drivers of assigned devices are remembered.
#[derive(clap::Args, Debug, Clone)]
pub struct StateOpts {
    /// Directory of drvdom's local state file.
    #[arg(long, env = "DRVDOM_STATE_DIR", default_value = pci::DEFAULT_STATE_DIR, value_name = "DIR")]
    pub state_dir: PathBuf,
}

/// Which devices `pci list` shows.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassFilter {
    /// Network controllers only.
    Network,
    /// Every device.
    All,
}

/// `drvdom pci` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum PciCmd {
    /// List PCI devices: address, names, driver, IOMMU group, reset, interfaces.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Which devices to show.
        #[arg(long, value_enum, default_value_t = ClassFilter::All)]
        class: ClassFilter,
        #[command(flatten)]
        sysfs: SysfsOpts,
        #[command(flatten)]
        modules: ModulesOpts,
    },
    /// Everything about one device.
    Show {
        /// The device, e.g. 0000:03:00.0 or 03:00.0.
        bdf: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sysfs: SysfsOpts,
        #[command(flatten)]
        modules: ModulesOpts,
    },
    /// Hide devices from dom0 now: unbind, remember the driver, bind pciback.
    Assign {
        /// The devices.
        #[arg(required = true, value_name = "BDF")]
        bdfs: Vec<String>,
        /// Let the guest write the device's config space (pciback permissive).
        #[arg(long)]
        permissive: bool,
        /// Assign even if dom0 uses the device (e.g. the management NIC,
        /// which carries dom0's default route) or no IOMMU is enabled.
        #[arg(long)]
        force: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sysfs: SysfsOpts,
        #[command(flatten)]
        state: StateOpts,
        #[command(flatten)]
        proc_: ProcOpts,
    },
    /// Give devices back to dom0: unbind pciback, rebind the original driver.
    Release {
        /// The devices.
        #[arg(required = true, value_name = "BDF")]
        bdfs: Vec<String>,
        /// Bind this driver instead of the recorded one.
        #[arg(long, value_name = "NAME")]
        driver: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sysfs: SysfsOpts,
        #[command(flatten)]
        state: StateOpts,
    },
    /// List devices bound to pciback (ready to pass through).
    Assignable {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sysfs: SysfsOpts,
    },
    /// Print the boot parameters that hide devices from dom0 at boot.
    ///
    /// Each device must exist. Without --builtin or --module the form is
    /// detected (modules.builtin, the loaded module); when it cannot be
    /// told, both forms are printed with the reason. A device carrying
    /// dom0's default route (the management NIC) gets a warning.
    Cmdline {
        /// The devices.
        #[arg(required = true, value_name = "BDF")]
        bdfs: Vec<String>,
        /// Also make pciback permissive.
        #[arg(long)]
        permissive: bool,
        /// pciback is built into the kernel (kernel command line form).
        #[arg(long, conflicts_with = "module")]
        builtin: bool,
        /// pciback is a module (modprobe.d form).
        #[arg(long)]
        module: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        sysfs: SysfsOpts,
        #[command(flatten)]
        modules: ModulesOpts,
        #[command(flatten)]
        proc_: ProcOpts,
    },
}

/// Parse BDF arguments; a bad one is a usage error (exit 2).
pub fn parse_bdfs(args: &[String]) -> anyhow::Result<Vec<Bdf>> {
    args.iter()
        .map(|s| s.parse::<Bdf>().map_err(|e| usage_error(e.to_string())))
        .collect()
}

/// Turn a library error into anyhow, keeping usage errors at exit code 2.
pub fn lib_err(e: pci::Error) -> anyhow::Error {
    if e.is_usage() {
        usage_error(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}

/// Run `drvdom pci`.
pub fn run(cmd: PciCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        PciCmd::List {
            json,
            class,
            sysfs,
            modules,
        } => list(json, class, &sysfs, &modules),
        PciCmd::Show {
            bdf,
            json,
            sysfs,
            modules,
        } => show(&bdf, json, &sysfs, &modules),
        PciCmd::Assign {
            bdfs,
            permissive,
            force,
            json,
            sysfs,
            state,
            proc_,
        } => assign(
            &parse_bdfs(&bdfs)?,
            AssignOptions::new(permissive, force),
            json,
            &sysfs,
            &state,
            &proc_,
        ),
        PciCmd::Release {
            bdfs,
            driver,
            json,
            sysfs,
            state,
        } => release(&parse_bdfs(&bdfs)?, driver.as_deref(), json, &sysfs, &state),
        PciCmd::Assignable { json, sysfs } => assignable(json, &sysfs),
        PciCmd::Cmdline {
            bdfs,
            permissive,
            builtin,
            module,
            json,
            sysfs,
            modules,
            proc_,
        } => {
            let kind = match (builtin, module) {
                (true, _) => Some(PcibackKind::Builtin),
                (_, true) => Some(PcibackKind::Module),
                _ => None,
            };
            cmdline(
                &parse_bdfs(&bdfs)?,
                permissive,
                kind,
                json,
                &sysfs,
                &modules,
                &proc_,
            )
        }
    }
}

fn sources(modules: &ModulesOpts) -> InfoSources {
    InfoSources::load(modules.dir().as_deref(), Path::new("/proc"))
}

fn id_line(d: &PciDevice) -> String {
    let unknown = |id: u16| format!("Device {id:04x}");
    format!(
        "{} {}: {} {} [{:04x}:{:04x}]",
        d.bdf,
        d.class_name
            .clone()
            .unwrap_or_else(|| format!("Class [{:04x}]", d.class >> 8)),
        d.vendor_name
            .clone()
            .unwrap_or_else(|| format!("Vendor {:04x}", d.vendor_id)),
        d.device_name
            .clone()
            .unwrap_or_else(|| unknown(d.device_id)),
        d.vendor_id,
        d.device_id
    )
}

#[allow(clippy::print_stdout)] // the command's output
fn list(
    json: bool,
    class: ClassFilter,
    sysfs: &SysfsOpts,
    modules: &ModulesOpts,
) -> anyhow::Result<ExitCode> {
    let devs: Vec<PciDevice> = sysfs
        .sysfs()
        .list(&sources(modules))
        .map_err(lib_err)
        .context("list PCI devices")?
        .into_iter()
        .filter(|d| class == ClassFilter::All || d.is_network())
        .collect();
    if json {
        output::print_json(schema::PCI_LIST, &serde_json::json!({ "devices": devs }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for d in &devs {
        let mut extra = vec![format!("driver={}", d.driver.as_deref().unwrap_or("-"))];
        if d.driver.as_deref() == Some(pci::PCIBACK) {
            extra.push("assignable".to_string());
        }
        if let Some(g) = d.iommu_group {
            extra.push(format!("iommu_group={g}"));
        }
        if !d.reset_methods.is_empty() {
            extra.push(format!("reset={}", d.reset_methods.join(",")));
        }
        for n in &d.net {
            extra.push(format!(
                "net={}({})",
                n.name,
                n.operstate.as_deref().unwrap_or("?")
            ));
        }
        println!("{}  {}", id_line(d), extra.join(" "));
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the command's output
fn show(
    bdf: &str,
    json: bool,
    sysfs: &SysfsOpts,
    modules: &ModulesOpts,
) -> anyhow::Result<ExitCode> {
    let bdf = bdf.parse::<Bdf>().map_err(|e| usage_error(e.to_string()))?;
    let d = sysfs
        .sysfs()
        .device_info(bdf, &sources(modules))
        .map_err(lib_err)?;
    if json {
        output::print_json(schema::PCI_SHOW, &d)?;
        return Ok(ExitCode::SUCCESS);
    }
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_string());
    let list = |v: &[Bdf]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    println!("{}", id_line(&d));
    println!("  subsystem:     {}", opt(&d.subsystem_name));
    println!("  driver:        {}", opt(&d.driver));
    println!(
        "  modules:       {}",
        if d.modules.is_empty() {
            "-".to_string()
        } else {
            d.modules.join(", ")
        }
    );
    println!(
        "  iommu group:   {}  (others: {})",
        d.iommu_group
            .map_or_else(|| "-".to_string(), |g| g.to_string()),
        list(&d.iommu_group_peers)
    );
    let flr = match d.flr {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown",
    };
    println!(
        "  reset:         {}  (FLR: {flr})",
        if d.reset_methods.is_empty() {
            "-".to_string()
        } else {
            d.reset_methods.join(", ")
        }
    );
    println!("  functions:     {}", list(&d.siblings));
    for n in &d.net {
        let addrs: Vec<String> = n.addresses.iter().map(ToString::to_string).collect();
        println!(
            "  interface:     {} {} mac {} {}{}",
            n.name,
            n.operstate.as_deref().unwrap_or("?"),
            n.mac.as_deref().unwrap_or("?"),
            if addrs.is_empty() {
                "no addresses".to_string()
            } else {
                addrs.join(", ")
            },
            if n.default_route {
                " (default route)"
            } else {
                ""
            }
        );
    }
    if let Some(s) = &d.sriov {
        println!(
            "  sr-iov:        {}/{} VFs: {}",
            s.num_vfs,
            s.total_vfs,
            list(&s.vfs)
        );
    }
    if let Some(p) = d.physfn {
        println!("  physical fn:   {p}");
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // the command's output and warnings
fn assign(
    bdfs: &[Bdf],
    opts: AssignOptions,
    json: bool,
    sysfs: &SysfsOpts,
    state: &StateOpts,
    proc_: &ProcOpts,
) -> anyhow::Result<ExitCode> {
    let fs = sysfs.sysfs();
    let net = proc_.net();
    // The management NIC: refused without --force (before anything).
    let mut mgmt_warnings = Vec::new();
    if let Some(m) = pci::management_nic_among(&fs, &net, bdfs) {
        if !opts.force {
            return Err(cli_error(
                Code::Invalid,
                format!(
                    "{}; not assigned (use --force to assign it anyway)",
                    m.warning()
                ),
            ));
        }
        mgmt_warnings.push((
            m.bdf,
            format!("{}; assigned anyway because of --force", m.warning()),
        ));
    }
    // xenstore /libxl/pci/<bdf>/driver_path (as xl) when reachable, plus
    // the local state file.
    let record = super::pci_record::DriverStore::open(&state.state_dir);
    let pb = Pciback::new(&fs, &record);
    let iommu = pci::checks::iommu_status(&fs, sysfs.xl_info().as_deref());
    let mut outcomes = Vec::new();
    for &b in bdfs {
        let mut out = pb
            .assign(b, opts, &net, &iommu)
            .map_err(lib_err)
            .with_context(|| format!("assign {b} to pciback"))?;
        for (mb, w) in &mgmt_warnings {
            if *mb == b {
                out.warnings.insert(0, w.clone());
            }
        }
        if !json {
            for w in &out.warnings {
                eprintln!("warning: {b}: {w}");
            }
            let prev = out.previous_driver.as_deref().unwrap_or("none");
            if out.already_assigned {
                println!("{b}: already assigned to pciback (original driver {prev})");
            } else {
                println!(
                    "{b}: assigned to pciback{} (original driver {prev}, recorded in {})",
                    if out.permissive { ", permissive" } else { "" },
                    record.describe()
                );
            }
        }
        outcomes.push(out);
    }
    // Devices that cannot be isolated from the assigned ones but stay in
    // dom0: the guest and dom0 would share them (IOMMU group), or a reset
    // would hit them too (other functions of the same device).
    for out in &mut outcomes {
        for w in left_behind(&fs, out.bdf) {
            if !json {
                eprintln!("warning: {}: {w}", out.bdf);
            }
            out.warnings.push(w);
        }
    }
    if json {
        output::print_json(
            schema::PCI_ASSIGN,
            &serde_json::json!({ "devices": outcomes }),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn left_behind(fs: &Sysfs, bdf: Bdf) -> Vec<String> {
    let src = InfoSources::default();
    let Ok(d) = fs.device_info(bdf, &src) else {
        return Vec::new();
    };
    let on_pciback =
        |b: &Bdf| fs.current_driver(*b).ok().flatten().as_deref() == Some(pci::PCIBACK);
    let mut w = Vec::new();
    let group: Vec<String> = d
        .iommu_group_peers
        .iter()
        .filter(|b| !on_pciback(b))
        .filter(|b| !fs.device_info(**b, &src).is_ok_and(|i| i.is_bridge()))
        .map(ToString::to_string)
        .collect();
    if !group.is_empty() {
        w.push(format!(
            "its IOMMU group also holds {}, still in dom0; assign them too",
            group.join(", ")
        ));
    }
    let sib: Vec<String> = d
        .siblings
        .iter()
        .filter(|b| !on_pciback(b))
        .map(ToString::to_string)
        .collect();
    if !sib.is_empty() {
        w.push(format!(
            "other functions {} of this device stay in dom0",
            sib.join(", ")
        ));
    }
    w
}

#[allow(clippy::print_stdout)] // the command's output
fn release(
    bdfs: &[Bdf],
    driver: Option<&str>,
    json: bool,
    sysfs: &SysfsOpts,
    state: &StateOpts,
) -> anyhow::Result<ExitCode> {
    let fs = sysfs.sysfs();
    let record = super::pci_record::DriverStore::open(&state.state_dir);
    let pb = Pciback::new(&fs, &record);
    let mut outcomes = Vec::new();
    for &b in bdfs {
        let out = pb
            .release(b, driver)
            .map_err(lib_err)
            .with_context(|| format!("release {b} from pciback"))?;
        if !json {
            if out.already_released {
                println!("{b}: not on pciback; bound to {}", out.driver);
            } else {
                println!("{b}: released to {}", out.driver);
            }
        }
        outcomes.push(out);
    }
    if json {
        output::print_json(
            schema::PCI_RELEASE,
            &serde_json::json!({ "devices": outcomes }),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the command's output
fn assignable(json: bool, sysfs: &SysfsOpts) -> anyhow::Result<ExitCode> {
    let fs = sysfs.sysfs();
    let record = StateFile::in_dir(Path::new(pci::DEFAULT_STATE_DIR));
    let v = Pciback::new(&fs, &record).assignable().map_err(lib_err)?;
    if json {
        output::print_json(schema::PCI_ASSIGNABLE, &serde_json::json!({ "devices": v }))?;
    } else {
        for b in v {
            println!("{b}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout, clippy::print_stderr)] // the command's output and warnings
fn cmdline(
    bdfs: &[Bdf],
    permissive: bool,
    kind: Option<PcibackKind>,
    json: bool,
    sysfs: &SysfsOpts,
    modules: &ModulesOpts,
    proc_: &ProcOpts,
) -> anyhow::Result<ExitCode> {
    let fs = sysfs.sysfs();
    // A hide= line for a device that does not exist hides nothing.
    let missing: Vec<String> = bdfs
        .iter()
        .filter(|b| !fs.device_dir(**b).exists())
        .map(ToString::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(output::cli_error_with(
            Code::NotFound,
            format!(
                "no PCI device {} in {} (see `drvdom pci list --class network`)",
                missing.join(", "),
                fs.devices_dir().display()
            ),
            serde_json::json!({ "missing": missing }),
        ));
    }
    let warnings: Vec<String> = pci::management_nics(&fs, &proc_.net())
        .into_iter()
        .filter(|m| bdfs.contains(&m.bdf))
        .map(|m| m.warning())
        .collect();
    let det = bootparams::detect(&fs, modules.dir().as_deref());
    let (kinds, why) = match (kind, det.kind) {
        (Some(k), _) => (vec![k], "as requested".to_string()),
        (None, Some(k)) => (vec![k], det.evidence.clone()),
        (None, None) => (
            vec![PcibackKind::Builtin, PcibackKind::Module],
            format!(
                "cannot tell whether xen-pciback is built in or a module ({}); \
                 both forms follow, use the one that fits or pass --builtin/--module",
                det.evidence
            ),
        ),
    };
    let params: Vec<_> = kinds
        .iter()
        .map(|k| bootparams::boot_params(bdfs, permissive, *k))
        .collect();
    if json {
        output::print_json(
            schema::PCI_CMDLINE,
            &serde_json::json!({
                "detection": det,
                "why": why,
                "params": params,
                "warnings": warnings,
            }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for w in &warnings {
        eprintln!(
            "{}: {w}",
            output::paint_if(output::stderr_colour(), "warning")
        );
    }
    if kinds.len() > 1 {
        println!("# {why}.");
    }
    for (i, p) in params.into_iter().enumerate() {
        if i > 0 {
            println!();
        }
        let both = kinds.len() > 1;
        match p.kind {
            PcibackKind::Builtin => {
                if !both {
                    println!(
                        "# xen-pciback is built into the kernel ({}).",
                        self_why(&det, kind)
                    );
                } else {
                    println!("# If xen-pciback is built into the kernel:");
                }
                println!(
                    "# Add to the dom0 kernel command line (e.g. GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub):"
                );
                println!("{}", p.kernel_cmdline.unwrap_or_default());
            }
            PcibackKind::Module => {
                if !both {
                    println!("# xen-pciback is a module ({}).", self_why(&det, kind));
                } else {
                    println!("# If xen-pciback is a module:");
                }
                println!(
                    "# Put in /etc/modprobe.d/xen-pciback.conf, and load xen-pciback before the NIC driver (e.g. from the initramfs):"
                );
                print!("{}", p.modprobe_conf.unwrap_or_default());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Why one form was chosen: as requested, or the detection's evidence.
fn self_why(det: &bootparams::Detection, asked: Option<PcibackKind>) -> String {
    if asked.is_some() {
        "as requested".to_string()
    } else {
        det.evidence.clone()
    }
}
