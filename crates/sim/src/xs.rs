//! Xenstore helpers shared by the simulated drivers.

use futures::future::FutureExt;
use tokio::sync::Semaphore;
use xenbus::XenbusState;
use xenstore::AsyncClient;

use crate::error::{Error, Result};

/// Linux `xenbus_switch_state`: in a transaction, read `<dir>/state`; if
/// the node is gone do nothing (the device is being torn down and must not
/// be resurrected by our write), if it already holds `st` do nothing (no
/// spurious watch events), else write `st`. `slots` bounds how many of the
/// domain's transactions are open at once (xenstored has a quota).
pub(crate) async fn switch_state(
    client: &AsyncClient,
    slots: &Semaphore,
    dir: &str,
    st: XenbusState,
) -> Result<()> {
    let path = format!("{dir}/state");
    let _slot = slots.acquire().await;
    let p = path.clone();
    client
        .transaction(move |tx| {
            let p = p.clone();
            async move {
                match tx.read_opt(&p).await? {
                    None => Ok(()),
                    Some(cur) if XenbusState::parse_bytes(&cur).ok() == Some(st) => Ok(()),
                    Some(_) => tx.write(&p, st.to_wire()).await,
                }
            }
            .boxed()
        })
        .await
        .map_err(Error::xs(format!("switch {path} to {}", st.name())))
}
