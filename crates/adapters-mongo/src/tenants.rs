//! The tenants, read from the platform's own `tenants` collection.
//!
//! The collection belongs to the platform: this store only reads the `slug`
//! field of each document and never writes it. A document whose slug is
//! missing or not a valid slug is skipped with a warning, so one bad entry
//! does not stop the ingest of every tenant.

use async_trait::async_trait;
use domain::{TenantSet, TenantSlug};
use futures::TryStreamExt as _;
use mongodb::bson::{Bson, Document, doc};
use ports::{StoreError, TenantDirectory};

use crate::MongoStore;
use crate::error::Failure;

#[async_trait]
impl TenantDirectory for MongoStore {
    async fn tenants(&self) -> Result<TenantSet, StoreError> {
        let operation = "reading the tenant list";
        let read = async {
            let documents: Vec<Document> = self
                .collection(&self.names.tenants)
                .find(doc! {})
                .projection(doc! { "slug": 1 })
                .await?
                .try_collect()
                .await?;
            Ok::<_, Failure>(documents)
        };
        let documents = read.await.map_err(|failure| failure.into_store_error(operation))?;
        Ok(TenantSet::new(documents.iter().filter_map(|document| {
            let slug = slug_of(document);
            if let Err(problem) = &slug {
                tracing::warn!(
                    collection = %self.names.tenants,
                    id = %document.get("_id").map(Bson::to_string).unwrap_or_default(),
                    problem = %problem,
                    "Tenant document skipped."
                );
            }
            slug.ok()
        })))
    }
}

/// Returns the tenant slug of one document of the tenants collection.
fn slug_of(document: &Document) -> Result<TenantSlug, String> {
    match document.get("slug") {
        Some(Bson::String(slug)) => TenantSlug::parse(slug).map_err(|error| error.to_string()),
        Some(other) => Err(format!("its slug is {:?}, not text", other.element_type())),
        None => Err("it has no slug".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_is_read_when_valid() {
        let slug = slug_of(&doc! { "_id": 1, "slug": "acme", "name": "Acme Corp" }).unwrap();

        assert_eq!(slug.as_str(), "acme");
    }

    #[test]
    fn document_without_a_usable_slug_is_refused_with_the_reason() {
        assert_eq!(slug_of(&doc! { "_id": 1 }).unwrap_err(), "it has no slug");
        assert!(slug_of(&doc! { "slug": 5 }).unwrap_err().contains("not text"));
        assert!(slug_of(&doc! { "slug": "Not A Slug!" }).is_err());
    }
}
