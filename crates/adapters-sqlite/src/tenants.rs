//! The tenant list, replaced at start from the `TENANTS` setting.

use async_trait::async_trait;
use domain::{TenantSet, TenantSlug};
use ports::{StoreError, TenantDirectory};

use crate::SqliteStore;
use crate::error::Failure;

impl SqliteStore {
    /// Replaces the stored tenants with `slugs`, in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database is busy or cannot be
    /// written now; [`StoreError::Other`] otherwise. The stored list is then
    /// unchanged.
    pub async fn set_tenants(&self, slugs: &TenantSet) -> Result<(), StoreError> {
        let slugs: Vec<String> = slugs.iter().map(|slug| slug.as_str().to_owned()).collect();
        self.run(
            format!("replacing the tenant list with {} tenants", slugs.len()),
            move |connection| {
                let transaction = connection.transaction()?;
                transaction.execute("DELETE FROM tenants", [])?;
                {
                    let mut insert =
                        transaction.prepare_cached("INSERT INTO tenants (slug) VALUES (?1)")?;
                    for slug in &slugs {
                        insert.execute([slug])?;
                    }
                }
                transaction.commit()?;
                Ok(())
            },
        )
        .await
    }
}

#[async_trait]
impl TenantDirectory for SqliteStore {
    async fn tenants(&self) -> Result<TenantSet, StoreError> {
        self.run("reading the tenant list".to_owned(), |connection| {
            let mut statement =
                connection.prepare_cached("SELECT slug FROM tenants ORDER BY slug")?;
            let slugs = statement.query_map([], |row| row.get::<_, String>(0))?;
            let mut tenants = Vec::new();
            for slug in slugs {
                let slug =
                    TenantSlug::parse(&slug?).map_err(|error| Failure::corrupt("slug", error))?;
                tenants.push(slug);
            }
            Ok(TenantSet::new(tenants))
        })
        .await
    }
}
