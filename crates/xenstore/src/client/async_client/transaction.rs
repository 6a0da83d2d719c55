//! [`Transaction`]: operations inside one xenstore transaction.

use super::super::common::{self};
use super::AsyncClient;
use crate::TxId;
use crate::error::Result;
use crate::perms::PermList;
use crate::wire::{MsgType, Request};

/// An open transaction. Operations see the transaction's private view;
/// nothing is visible to others until [`commit`](Transaction::commit).
/// Dropping it without commit or abort aborts it (best effort).
pub struct Transaction {
    pub(super) client: AsyncClient,
    pub(super) id: TxId,
    pub(super) finished: bool,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Transaction {
    /// The transaction id.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// Read a value inside the transaction.
    pub async fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.client.read_in(self.id.0, path).await
    }

    /// Read a value as text (lossy UTF-8).
    pub async fn read_string(&self, path: &str) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.read(path).await?).into_owned())
    }

    /// Read a value; `None` if absent.
    pub async fn read_opt(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.client.read_opt_in(self.id.0, path).await
    }

    /// Write a value inside the transaction.
    pub async fn write(&self, path: &str, value: impl AsRef<[u8]>) -> Result<()> {
        self.client.write_in(self.id.0, path, value.as_ref()).await
    }

    /// Create a node inside the transaction.
    pub async fn mkdir(&self, path: &str) -> Result<()> {
        self.client.mkdir_in(self.id.0, path).await
    }

    /// Remove a subtree inside the transaction.
    pub async fn rm(&self, path: &str) -> Result<()> {
        self.client.rm_in(self.id.0, path).await
    }

    /// List children inside the transaction.
    pub async fn directory(&self, path: &str) -> Result<Vec<String>> {
        self.client.directory_in(self.id.0, path).await
    }

    /// True if the node exists in the transaction's view.
    pub async fn exists(&self, path: &str) -> Result<bool> {
        self.client.exists_in(self.id.0, path).await
    }

    /// Permissions inside the transaction.
    pub async fn get_perms(&self, path: &str) -> Result<PermList> {
        self.client.get_perms_in(self.id.0, path).await
    }

    /// Set permissions inside the transaction.
    pub async fn set_perms(&self, path: &str, perms: &PermList) -> Result<()> {
        self.client.set_perms_in(self.id.0, path, perms).await
    }

    /// Commit. `Ok(false)` means the server answered `EAGAIN` (a conflict):
    /// nothing was applied and the caller should start over.
    pub async fn commit(mut self) -> Result<bool> {
        self.finished = true;
        let r = self
            .client
            .call(self.id.0, Request::TransactionEnd(true), "commit")
            .await;
        common::commit_result(r)
    }

    /// Abort: discard everything done in the transaction.
    pub async fn abort(mut self) -> Result<()> {
        self.finished = true;
        let r = self
            .client
            .call(self.id.0, Request::TransactionEnd(false), "abort")
            .await?;
        common::want_ok(MsgType::TransactionEnd, r)
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.finished {
            self.client
                .send_detached(&Request::TransactionEnd(false), self.id.0);
        }
    }
}
