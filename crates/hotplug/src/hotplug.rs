//! [`Hotplug`]: the facade the agent holds, one netlink socket shared by
//! every device task.

use crate::bridge::{self, BridgeConfig, BridgeInfo, BridgeReport, PortInfo};
use crate::error::Result;
use crate::filter::FilterStatus;
use crate::netlink::NetlinkOps;
use crate::ops::LinkOps;
use crate::vif::{self, VifConnected, VifOffline, VifOnline};

/// Hotplug operations over a [`LinkOps`] (by default the kernel's).
#[derive(Debug, Clone)]
pub struct Hotplug<O: LinkOps = NetlinkOps> {
    ops: O,
}

impl Hotplug<NetlinkOps> {
    /// Open a netlink socket in the calling thread's network namespace.
    /// Must be called inside a tokio runtime.
    pub fn connect() -> Result<Self> {
        Ok(Hotplug {
            ops: NetlinkOps::connect()?,
        })
    }
}

impl<O: LinkOps> Hotplug<O> {
    /// Use the given operations (e.g. a fake in tests).
    pub fn new(ops: O) -> Self {
        Hotplug { ops }
    }

    /// The underlying operations.
    pub fn ops(&self) -> &O {
        &self.ops
    }

    /// See [`bridge::bridge_up`].
    pub async fn bridge_up(&self, cfg: &BridgeConfig) -> Result<BridgeReport> {
        bridge::bridge_up(&self.ops, cfg).await
    }

    /// See [`vif::vif_online`].
    pub async fn vif_online(&self, req: &VifOnline) -> Result<VifConnected> {
        vif::vif_online(&self.ops, req).await
    }

    /// See [`vif::vif_offline`].
    pub async fn vif_offline(&self, vif: &str) -> Result<VifOffline> {
        vif::vif_offline(&self.ops, vif).await
    }

    /// See [`bridge::bridges`].
    pub async fn bridges(&self) -> Result<Vec<BridgeInfo>> {
        bridge::bridges(&self.ops).await
    }

    /// The filter in force on a vif and its drop counters.
    pub async fn filter_status(&self, vif: &str) -> Result<Option<FilterStatus>> {
        self.ops.filter_status(vif).await
    }

    /// Every vif filter with its drop counters, in one pass (for publishing
    /// all ports: two kernel dumps whatever the number of vifs).
    pub async fn filter_statuses(&self) -> Result<Vec<FilterStatus>> {
        self.ops.filter_statuses().await
    }

    /// Remove the filters of vifs that no longer exist (left behind when
    /// a vif vanished while the agent was not running). Returns their names.
    pub async fn prune_filters(&self) -> Result<Vec<String>> {
        let mut gone = Vec::new();
        for name in self.ops.filtered().await? {
            if self.ops.link_by_name(&name).await?.is_none() {
                self.ops.remove_filter(&name).await?;
                gone.push(name);
            }
        }
        Ok(gone)
    }

    /// See [`bridge::bridge_ports`].
    pub async fn bridge_ports(&self, bridge: &str) -> Result<Vec<PortInfo>> {
        bridge::bridge_ports(&self.ops, bridge).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{ScriptRun, run_script};

    /// Compile-time check: the agent spawns these on a multi-threaded runtime.
    #[allow(dead_code)]
    fn futures_are_send(hp: &Hotplug, req: &VifOnline, cfg: &BridgeConfig, run: &ScriptRun) {
        fn send<T: Send>(_: T) {}
        send(hp.vif_online(req));
        send(hp.vif_offline("vif1.0"));
        send(hp.bridge_up(cfg));
        send(hp.bridges());
        send(hp.bridge_ports("xenbr0"));
        send(run_script(run));
    }

    #[test]
    fn hotplug_is_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Hotplug>();
    }
}
