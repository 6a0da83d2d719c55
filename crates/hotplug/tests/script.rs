//! The legacy hotplug script runner, with small shell scripts standing in
//! for /etc/xen/scripts/vif-bridge.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hotplug::{Error, ScriptAction, ScriptRun, run_script};

/// All scripts are written once, before any test spawns a process: writing
/// an executable while another thread forks can make `exec` fail with
/// ETXTBSY (the child briefly holds the write descriptor).
#[allow(clippy::unwrap_used)] // test setup: failing to write a script fails the test
fn scripts() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write(
            "env.sh",
            "#!/bin/sh\n\
             echo \"argc=$# args=$*\"\n\
             echo \"script=$script\"\n\
             echo \"XENBUS_TYPE=$XENBUS_TYPE XENBUS_PATH=$XENBUS_PATH XENBUS_BASE_PATH=$XENBUS_BASE_PATH\"\n\
             echo \"netdev=[$netdev] vif=$vif extra=$EXTRA\"\n\
             echo 'fatal: bridge xenbr1 does not exist' >&2\n\
             exit 3\n",
        );
        // Starts a grandchild, records both pids, then hangs.
        write(
            "hang.sh",
            "#!/bin/sh\n\
             sleep 300 &\n\
             echo \"$$ $!\" > \"$PIDFILE.tmp\"\n\
             mv \"$PIDFILE.tmp\" \"$PIDFILE\"\n\
             wait\n",
        );
        write("ok.sh", "#!/bin/sh\necho connected\n");
        dir
    })
}

fn script(name: &str) -> PathBuf {
    scripts().path().join(name)
}

fn process_gone(pid: &str) -> bool {
    // Gone, or a zombie waiting for whoever inherited it.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test]
async fn script_gets_libxl_args_and_environment_and_its_status_is_returned() {
    let mut run = ScriptRun::vif(script("env.sh"), ScriptAction::Online, 5, 0, "vif5.0");
    run.netdev = "eth1".into();
    run.extra_env.push(("EXTRA".into(), "yes".into()));
    let out = run_script(&run).await.unwrap();
    assert!(!out.success());
    assert_eq!(out.status.code(), Some(3));
    let expected = format!(
        "argc=2 args=online type_if=vif\n\
         script={}\n\
         XENBUS_TYPE=vif XENBUS_PATH=backend/vif/5/0 XENBUS_BASE_PATH=backend\n\
         netdev=[eth1] vif=vif5.0 extra=yes\n",
        script("env.sh").display()
    );
    assert_eq!(out.stdout, expected);
    assert_eq!(out.stderr, "fatal: bridge xenbr1 does not exist\n");

    let off = ScriptRun::vif(script("env.sh"), ScriptAction::Offline, 7, 2, "vif7.2");
    let out = run_script(&off).await.unwrap();
    assert!(
        out.stdout.starts_with("argc=2 args=offline type_if=vif\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("XENBUS_PATH=backend/vif/7/2 "),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn successful_script_reports_success() {
    let run = ScriptRun::vif(script("ok.sh"), ScriptAction::Online, 1, 0, "vif1.0");
    let out = run_script(&run).await.unwrap();
    assert!(out.success());
    assert_eq!(out.stdout, "connected\n");
}

#[tokio::test]
async fn timeout_kills_the_script_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let mut run = ScriptRun::vif(script("hang.sh"), ScriptAction::Online, 5, 0, "vif5.0");
    run.timeout = Duration::from_secs(1);
    run.extra_env
        .push(("PIDFILE".into(), pidfile.display().to_string()));
    let t0 = Instant::now();
    let e = run_script(&run).await.unwrap_err();
    assert!(matches!(e, Error::ScriptTimeout { .. }), "{e:?}");
    assert!(
        e.to_string().contains("timed out after 1s and was killed"),
        "{e}"
    );
    assert!(t0.elapsed() < Duration::from_secs(10));

    let pids = std::fs::read_to_string(&pidfile).expect("script recorded its pids");
    for pid in pids.split_whitespace() {
        testutil::wait_until(
            &format!("process {pid} killed"),
            Duration::from_secs(5),
            || process_gone(pid),
        );
    }
}

#[tokio::test]
async fn missing_script_is_a_spawn_error_naming_it() {
    scripts(); // never fork while another test writes its scripts
    let run = ScriptRun::vif(
        "/nonexistent/vif-bridge",
        ScriptAction::Online,
        5,
        0,
        "vif5.0",
    );
    let e = run_script(&run).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot run hotplug script /nonexistent/vif-bridge"
    );
}
