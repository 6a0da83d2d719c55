//! A real `drvdom-xenstored` (testutil) plus domain helpers, as in xenbus's tests.

#![allow(dead_code)]
// Test-only harness: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use xenbus::DomainSpec;
use xenstore::{AsyncClient, DomId};

/// A running server ([`testutil::xenstored::Xenstored`]) with the async
/// helpers these tests share.
pub struct Xsd(pub testutil::xenstored::Xenstored);

impl std::ops::Deref for Xsd {
    type Target = testutil::xenstored::Xenstored;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Xsd {
    /// Start a server and wait for its socket.
    pub fn start() -> Xsd {
        Xsd(testutil::xenstored::Xenstored::start())
    }

    /// Start a server with extra arguments (e.g. quotas).
    pub fn start_with(extra: &[&str]) -> Xsd {
        Xsd(testutil::xenstored::Xenstored::start_with(extra))
    }

    /// Connect as dom0.
    pub async fn dom0(&self) -> AsyncClient {
        AsyncClient::connect(&self.socket).await.unwrap()
    }

    /// Connect as domain `d` (must be introduced).
    pub async fn as_domain(&self, d: DomId) -> AsyncClient {
        AsyncClient::connect(self.domdir.join(format!("{}.sock", d.0)))
            .await
            .unwrap()
    }

    /// Introduce `d` and write its `/local/domain` nodes like xl.
    pub async fn create_domain(&self, c: &AsyncClient, d: DomId, name: &str, driver: bool) {
        c.introduce(d, 0, 0).await.unwrap();
        xenbus::make_domain(c, &DomainSpec::new(d, name).driver_domain(driver))
            .await
            .unwrap();
    }
}
